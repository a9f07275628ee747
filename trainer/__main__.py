"""``python -m trainer`` (also what torchrun runs: ``torchrun ... -m trainer train ...``)."""

import sys

from trainer.cli import main

sys.exit(main())
