"""The Textual dashboard: the app (compose, keys, draw) and one folder per feature: run/
(the panels and what keeps them current), launch/ (start, resume, stop), runs/, charts/,
checkpoints/; widgets/ holds the shared building blocks."""
