"""Steering a run: RunSession (start, stop, resume, status) and the process, launch and run-discovery code it uses."""
