"""Small utilities every command shares: ``cli`` (argument types, one-line errors), ``device``
(device choice, seeded generators), ``files`` (outputs written whole, never over a user's file),
``budget`` (memory bounds)."""
