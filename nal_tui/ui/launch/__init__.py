"""Start, resume and stop: the control keys, their confirmation dialogs, the welcome screen."""
