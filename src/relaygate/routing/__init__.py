"""Choosing the provider and model that serve a request."""
