"""Benchmark helpers: a near-free canned DynamoDB endpoint and timing loops."""
