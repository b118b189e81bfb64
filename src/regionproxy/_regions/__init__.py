"""One region: its replica client, its circuit breaker, and the health probes of every region."""
