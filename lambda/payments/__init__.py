"""Payment domain: money, validation, CSV reading, status lifecycle and storage.

Nothing in this package knows about Lambda events; the handlers in ``handlers/`` translate events
into these calls and results into responses.
"""
