"""The Textual dashboard: the app (compose, keys, actions that call a RunSession), workers,
messages, render-only widgets and dialogs."""
