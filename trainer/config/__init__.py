"""Typed, frozen training configuration loaded from YAML.

Torch-free: ``nal_tui --preflight`` validates configs with this package. Unknown keys and
out-of-range values are rejected with the file and the dotted key in the message.

The parts: :mod:`.schema` (the sections as frozen dataclasses; every key documented there),
:mod:`.build` (plain data to a validated Config, and back), :mod:`.yamlfile` (the hardened
YAML reader). Every name is importable from ``trainer.config`` itself.
"""

from __future__ import annotations

from trainer.config.build import (
    MAX_BATCH_SAMPLES,
    MAX_INT,
    MAX_LIST,
    from_dict,
    replace,
    show,
    to_dict,
)
from trainer.config.schema import (
    BEST_METRICS,
    DEVICES,
    PRECISIONS,
    RECON_LOSSES,
    VAL_METRICS,
    AudioConfig,
    BestConfig,
    CheckpointConfig,
    CompositeConfig,
    Config,
    ConfigError,
    DataConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    LogConfig,
    LossConfig,
    OptimConfig,
    TrainConfig,
)
from trainer.config.yamlfile import (
    MAX_CONFIG_BYTES,
    MAX_SCALAR_CHARS,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    dump,
    load,
)

__all__ = [
    "BEST_METRICS",
    "DEVICES",
    "MAX_BATCH_SAMPLES",
    "MAX_CONFIG_BYTES",
    "MAX_INT",
    "MAX_LIST",
    "MAX_SCALAR_CHARS",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "PRECISIONS",
    "RECON_LOSSES",
    "VAL_METRICS",
    "AudioConfig",
    "BestConfig",
    "CheckpointConfig",
    "CompositeConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "DiscriminatorConfig",
    "GeneratorConfig",
    "LogConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "dump",
    "from_dict",
    "load",
    "replace",
    "show",
    "to_dict",
]
