"""intake's own tables, for its migrations (the shared ones are added by `shared.migrations`)."""

from services.intake.read_model import metadata

__all__ = ["metadata"]
