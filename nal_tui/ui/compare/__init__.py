"""``nal-tui compare``: 2-6 runs overlaid, their config differences and best scores."""
