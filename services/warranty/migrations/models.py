"""warranty's own tables, for its migrations (the shared ones are added by `shared.migrations`)."""

import services.warranty.parts_read_model  # noqa: F401  (declares the parts ledger's tables)
import services.warranty.timeline  # noqa: F401  (declares the timeline in warranty's metadata)
from services.warranty.read_model import metadata

__all__ = ["metadata"]
