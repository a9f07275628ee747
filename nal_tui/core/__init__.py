"""The headless core of nal-tui: no textual, rich, torch or numpy (checked by the tests).

``feed/`` turns the event log into records (follower, backlog loader, tail), ``reducer/``
turns records into run state (``RunState`` and its parts, the views the panels draw),
``control/`` steers a run (``RunSession``, the one API for the dashboard and the CLI;
processes, launch, run discovery); vocabulary, defaults and background services here.
"""
