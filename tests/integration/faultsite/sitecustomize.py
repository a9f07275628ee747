"""Injects ``$NAL_TEST_FAULT`` (tests/integration/inject_fault.py) into a real ``nal-train``
process: put this directory on PYTHONPATH. The process keeps the trainer's own command line,
so nal-tui recognises it as the run's trainer (the wrapper script's would not be)."""

import os

if os.environ.get("NAL_TEST_FAULT"):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from inject_fault import _install

    _install(os.environ["NAL_TEST_FAULT"])
