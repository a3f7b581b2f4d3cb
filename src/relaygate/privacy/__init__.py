"""What inference metadata keeps about people."""
