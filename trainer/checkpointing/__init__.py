"""Checkpoints: :mod:`.format` (the one definition of the on-disk training state: version,
keys, build and restore), :mod:`.store` (atomic save, the verifier with memory, start-up
cleanup of killed writes), :mod:`.loadtest` (the full load test), :mod:`.rng` (RNG states),
:mod:`.lineage` (branch moves). Layout, manifests, "latest" and retention are the torch-free
:mod:`trainer.rundir`.
"""
