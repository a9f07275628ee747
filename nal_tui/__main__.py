"""``python -m nal_tui``: the same as the ``nal-tui`` command."""

import sys

from nal_tui.cli import main

sys.exit(main())
