"""Following one run: what keeps its state current (feeds), the dashboard and its panels."""
