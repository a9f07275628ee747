"""Modal screens: help, start/resume/stop confirmations, run picker."""
