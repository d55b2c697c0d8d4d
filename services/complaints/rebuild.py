"""`python -m services.complaints.rebuild`: fold every complaint afresh from the event store into the read
model, and schedule every deadline a complaint still watches."""

from services.complaints.app import ComplaintsSettings
from services.complaints.read_model import rebuild
from shared.runtime import rebuild_from_event_store

if __name__ == "__main__":
    rebuild_from_event_store(ComplaintsSettings(), rebuild, lambda count: f"rebuilt {count} complaints")
