"""The event log (``events.jsonl``): the one contract between the trainer and the dashboard.

Torch-free and numpy-free: ``nal_tui`` imports these modules. The parts:
:mod:`.schema` (version, field names, statuses, exit codes, alert kinds, metrics, the event
dataclasses), :mod:`.codec` (one record to one JSON line and back), :mod:`.writer` (the
trainer's append-only writer), :mod:`.parse` (validation by type and range, bulk parsing),
:mod:`.index` and :mod:`.indexwrite` (the ``events.idx`` block index cache). Import each
name from the module that defines it; this package has no facade.
"""
