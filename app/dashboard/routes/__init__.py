"""The dashboard's routes, one module per page family. Each handler parses, calls one view or
one service function, and renders."""
