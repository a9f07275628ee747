"""Opening another run: the run picker."""
