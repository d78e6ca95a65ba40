"""API clients as an admin manages them: list, create and revoke keys, audited."""
