"""Metrics and logs shared by the services."""
