"""The management API under /admin/v1 (FastAPI): tenants, keys, limits, budgets, issuers, usage."""
