"""Servicetrail's common code: event contracts, event store, messaging, auth and HTTP conventions.

Everything that is the same in the five services lives here once.
"""
