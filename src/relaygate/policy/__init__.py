"""Who may do what: the in-memory policy snapshot and the per-request checks built on it."""
