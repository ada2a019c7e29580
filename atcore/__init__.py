"""Shared AT Protocol primitives and the contracts between Skyspot's services.

Nothing here imports a service package (`pds`, `firehose_consumer`, `feedgen`); a test enforces it.
"""
