"""Where a call goes: the router, read-your-writes, the attempt loop, hedged reads and their budget."""
