"""State shared by every worker of a fleet, through Redis."""
