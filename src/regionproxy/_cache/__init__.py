"""The read cache: its store, reads through it, request keys and the copies a hit hands out."""
