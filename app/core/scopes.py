"""Every API scope, as `resource:action` constants, in one registry."""

from enum import StrEnum


class Scope(StrEnum):
    REQUESTS_WRITE = "requests:write"
    REQUESTS_READ = "requests:read"
    LINEAGE_WRITE = "lineage:write"
    MODELS_WRITE = "models:write"
    # Sign in to the dashboard and read every page, but take no action there (a viewer).
    DASHBOARD = "dashboard"
    ADMIN = "admin"


ALL_SCOPES: frozenset[str] = frozenset(s.value for s in Scope)
