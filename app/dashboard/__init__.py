"""The privacy officer's dashboard: server-rendered pages under `/dashboard`.

Pages read through `queries` (a read model over the domains' tables) and act only through the
domains' service functions (`actions`), so the dashboard never offers or performs a move that
the API would refuse.
"""
