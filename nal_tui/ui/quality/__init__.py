"""The validation chart (key ``g``): quality metrics against step, per set."""
