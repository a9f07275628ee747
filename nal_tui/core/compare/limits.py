"""How many runs one comparison takes (the picker checks it before anything is loaded)."""

MIN_RUNS, MAX_RUNS = 2, 6
