"""What users do with a trained vocoder: :mod:`.inference` (load a verified generator, mels),
:mod:`.vocode` (``nal-train vocode``), :mod:`.export` (``nal-train export``)."""
