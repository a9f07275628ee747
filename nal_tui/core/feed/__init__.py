"""From the event log to records: the follower (files and callbacks), the backlog loader, the tail preview."""
