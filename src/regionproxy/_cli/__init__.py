"""The regionproxy command: cli, demo and the latency probe."""
