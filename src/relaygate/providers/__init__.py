"""Provider implementations, one module each."""
