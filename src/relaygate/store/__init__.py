"""Persistent storage: SQLAlchemy 2 (async) with Alembic migrations; SQLite or PostgreSQL."""
