"""intake's own tables, for its migrations (the shared ones are added by `shared.migrations`)."""

from services.intake.read_model import metadata
from services.intake.webhooks import tables as _webhook_tables  # noqa: F401  (adds the webhook tables)

__all__ = ["metadata"]
