"""Logs (and, later, metrics and traces): what an operator sees of the gateway at work."""
