"""Settings: the policies (plain values), the session's settings and their checks, and reading them from the environment."""
