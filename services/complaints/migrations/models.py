"""complaints' own tables, for its migrations (the shared ones are added by `shared.migrations`)."""

from services.complaints.read_model import metadata

__all__ = ["metadata"]
