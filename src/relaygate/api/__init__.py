"""The HTTP surface: OpenAI-compatible data plane and health endpoints."""
