"""The whole-run loss charts (min/max buckets, every spike kept)."""
