"""The checkpoint table and the milestones panel."""
