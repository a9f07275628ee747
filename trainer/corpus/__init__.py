"""Corpus rules shared by the trainer and preflight: one verdict on every file, torch-free.

Stdlib only (no numpy, torch or soundfile): ``nal_tui``'s preflight may import this package.
WAV and ``.npy`` headers are parsed with the *real* data length (the bytes present, not the
header's claim). :func:`check_corpus` applies every rule and returns a :class:`CorpusReport`;
the trainer refuses a corpus with errors (exit 2) and reports the warnings.

The parts: :mod:`.report` (rule names, findings, the report), :mod:`.headers` (WAV and .npy
headers), :mod:`.metadata` (metadata.csv and the split), :mod:`.check` (the rules applied).
Import each name from the module that defines it; this package has no facade.
"""
