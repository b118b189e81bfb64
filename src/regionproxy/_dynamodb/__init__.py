"""What DynamoDB's API means, with no I/O: operation kinds, idempotency and the update-expression grammar, item keys, the call description, key schemas, error verdicts."""
