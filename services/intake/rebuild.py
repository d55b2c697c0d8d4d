"""`python -m services.intake.rebuild`: fold every request afresh from the event store into the read model."""

from services.intake.app import IntakeSettings
from services.intake.read_model import rebuild
from services.intake.webhooks import tables as _webhook_tables  # noqa: F401  (subscriptions are rebuilt too)
from shared.runtime import rebuild_from_event_store

if __name__ == "__main__":
    rebuild_from_event_store(IntakeSettings(), rebuild, lambda count: f"rebuilt {count} service requests")
