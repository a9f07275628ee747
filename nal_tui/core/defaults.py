"""The defaults every nal-tui entry point shares: where runs live, how long to wait.

The dashboard and ``nal-tui start|stop|resume|status`` read these, and nothing else
defines them.
"""

from __future__ import annotations

import os
from pathlib import Path

from trainer.rundir import layout
from trainer.rundir.layout import CONFIG_FILE

DEFAULT_LOGS = layout.LOGS_DIR
DEFAULT_CONFIG = Path("config/demo.yaml")  # in a clone; elsewhere the shipped demo preset
DEFAULT_GRACE_S = 120.0  # a stop finishes the step and saves a checkpoint first
START_WAIT_S = 30.0  # how long a start waits for the trainer to take the run lock
KILL_WAIT_S = 10.0  # after SIGKILL, how long to wait for the processes to go


def default_run_dir(
    config_path: str | os.PathLike[str], logs_dir: str | os.PathLike[str] = DEFAULT_LOGS
) -> Path:
    """Where a start of ``config_path`` puts the run without a run dir (the trainer's one
    definition, ``trainer.rundir.layout.default_run_dir``); ConfigError for a bad config."""
    # Loading a config pulls in yaml and the config schema: kept off the CLI's light path.
    from trainer.config.yamlfile import load

    return layout.default_run_dir(load(config_path).name, logs_dir)


def default_config() -> Path:
    """The demo config: ``config/demo.yaml`` where the current directory has it (a clone),
    else the shipped demo preset (an installed package, another directory)."""
    if DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    # The preset lookup reads the package's data directory: kept off the CLI's light path.
    from trainer.config.locate import DEMO_PRESET, resolve_config

    return resolve_config(DEMO_PRESET)


def config_for_run(run_dir: Path | None, config: Path | None = None) -> Path:
    """The config to start or resume with: the given one (a path or a preset's name), the
    run's resolved config.yaml, else the demo config."""
    if config is not None:
        # A preset named without a path becomes its file here, so every caller sees a file.
        from trainer.config.locate import resolve_config

        return resolve_config(config)
    if run_dir is not None and (run_dir / CONFIG_FILE).is_file():
        return run_dir / CONFIG_FILE
    return default_config()
