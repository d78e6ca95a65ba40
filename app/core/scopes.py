"""Every API scope, as `resource:action` constants, in one registry."""

from enum import StrEnum


class Scope(StrEnum):
    REQUESTS_WRITE = "requests:write"
    REQUESTS_READ = "requests:read"
    LINEAGE_WRITE = "lineage:write"
    MODELS_WRITE = "models:write"
    ADMIN = "admin"


ALL_SCOPES: frozenset[str] = frozenset(s.value for s in Scope)
