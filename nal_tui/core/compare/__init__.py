"""``nal-tui compare``: several runs side by side (their states, configs, best scores)."""
