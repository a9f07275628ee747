"""Training: the ``Trainer`` (set up, run, close) and the components it holds.

:mod:`.loop` (the Trainer and ``train()``), :mod:`.startup` (phases, precision, data, networks),
:mod:`.resume` (where a run starts from: ``--resume`` and ``--init-from``), :mod:`.step` (one
D+G update) with :mod:`.rollback`, :mod:`.nonfinite` (the non-finite policy),
:mod:`.saving` (the checkpoint cadence), :mod:`.evaluation` (the validation cadence) with
:mod:`.validation`, :mod:`.metrics` and :mod:`.ledger`, :mod:`.runlog` (the event log and its
cadence), :mod:`.console`, :mod:`.logsetup`, :mod:`.signals`, :mod:`.distributed`,
:mod:`.errors`. Importing this package imports no torch (signals, console, logsetup and errors
are torch-free: the CLI installs its signal handlers before torch loads).
"""
