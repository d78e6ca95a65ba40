"""The dashboard's read model: plain queries over the domains' tables, shaped for the pages.
Nothing here writes; the pages change state only through `app.dashboard.actions`."""
