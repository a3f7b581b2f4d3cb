"""Process startup: bootstrap of the database and keys, the banner, and the ASGI server."""
