"""The headless core of nal-tui: no textual, rich, torch or numpy (checked by the tests).

Vocabulary, the log follower and backlog loader, the reducer (``RunState`` and its
parts), process identity and signalling, ``RunSession`` (the one API for the dashboard
and the CLI), run discovery and background services.
"""
