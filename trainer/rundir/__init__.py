"""Run-directory layout, checkpoint manifests, lineage and "latest", the run lock, the PID file.

Torch-free and numpy-free on purpose: ``nal_tui`` and preflight import this package to list
and verify checkpoints, to find the run's latest checkpoint and to identify the trainer
process. A checkpoint counts as complete only once its JSON manifest is in place; the
manifest is always renamed into place last.

Lineage: ``checkpoints/`` holds the *live branch* only, one linear chain. Resuming from step
S while live checkpoints after S exist starts a new branch: those later checkpoints are moved
aside (os.rename, never copied or deleted) into ``checkpoints/abandoned/<dir>/``, where they
stay listed and resumable by path, and retention never sees them. "latest" is the newest
live checkpoint that passes verification. This package is the one definition of those
rules; :mod:`trainer.checkpointing.lineage` carries out the moves.

The parts: :mod:`.layout` (names, atomic writes, hashing, the checkpoint errors),
:mod:`.manifest`, :mod:`.checkpoints` (describe, list, verify), :mod:`.resolve` ("latest",
"best" and paths), :mod:`.retention` (what may be deleted), :mod:`.history` (what a run
directory holds), :mod:`.lock` (run lock and PID file).
Import each name from the module that defines it; this package has no facade.
"""
