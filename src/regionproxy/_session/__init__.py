"""The session that composes the parts, and the counters it keeps for status()."""
