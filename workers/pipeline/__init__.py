"""Glue between the database and the engine: loading records, storing versions, finishing
requests. Used by the Celery tasks; the engine itself never sees the database."""
