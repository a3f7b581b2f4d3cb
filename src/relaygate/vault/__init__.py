"""Secrets at rest: sealing with the gateway's master key."""
