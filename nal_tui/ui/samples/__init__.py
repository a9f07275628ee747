"""The samples view (key ``v``): validation samples as spectrograms, heard with a local
player."""
