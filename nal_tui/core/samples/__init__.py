"""Validation samples as the samples view shows them: which validations have samples on
disk (:mod:`.catalog`), their mel pictures as coloured cells (:mod:`.raster`,
:mod:`.colormap`) and a local audio player (:mod:`.player`). Headless and numpy-free; the
picture format itself is ``trainer.rundir.melpic``."""
