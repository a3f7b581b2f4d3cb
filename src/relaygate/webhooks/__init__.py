"""Outbound webhooks: endpoints, Standard Webhooks signatures, an SSRF-safe sender, the outbox."""
