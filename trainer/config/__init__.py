"""Typed, frozen training configuration loaded from YAML.

Torch-free: ``nal_tui --preflight`` validates configs with this package. Unknown keys and
out-of-range values are rejected with the file and the dotted key in the message.

The parts: :mod:`.schema` (the sections as frozen dataclasses; every key documented there),
:mod:`.build` (plain data to a validated Config, and back), :mod:`.yamlfile` (the hardened
YAML reader).
Import each name from the module that defines it; this package has no facade.
"""
