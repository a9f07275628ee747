"""``nal-tui watch``: the headless watcher and its notifiers (Apprise, command hooks).

It follows run directories with the dashboard's own loader and follower, applies every
batch to the dashboard's own ``RunState`` (so every alert has one definition, the
reducer's detectors), and turns what the reducer raised into notices: deduplicated,
filtered by level, delivered with retries, remembered in a state file per run.
"""
