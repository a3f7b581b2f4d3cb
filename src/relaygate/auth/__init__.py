"""Authentication of data-plane and admin callers."""
