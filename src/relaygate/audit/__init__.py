"""The tamper-evident audit log: a hash chain, signed checkpoints exported elsewhere."""
