"""The application kernel every service is built on: a unit of work, an Application owning the transaction,
handler tables keyed by class with dependencies bound by signature, one rebuild (docs/architecture.md)."""

from shared.kernel.application import Application, Kernel, deadline_metadata, rebuild_read_model
from shared.kernel.handlers import HandlerMismatch
from shared.kernel.unit_of_work import HasDeadlines, Projections, Projector, UnitOfWork, reconcile_deadlines

__all__ = [
    "Application",
    "HandlerMismatch",
    "HasDeadlines",
    "Kernel",
    "Projections",
    "Projector",
    "UnitOfWork",
    "deadline_metadata",
    "rebuild_read_model",
    "reconcile_deadlines",
]
