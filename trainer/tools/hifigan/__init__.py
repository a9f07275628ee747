"""Interop with the reference HiFi-GAN trainer (jik876/hifi-gan) and its forks' files:
:mod:`.reference` (its file and config formats, torch-free), :mod:`.importer`
(``nal-train import --format hifigan``), :mod:`.exporter` (``nal-train export --format hifigan``)."""
