"""Other services' events as tests publish them to the service under test (one builder per event, shared by the
services' suites)."""

from __future__ import annotations

from shared.contracts.dispatch import JobCreated
from shared.contracts.enums import Priority, ServiceMode


def job_created(job_id: str, request_id: str, dealer_id: str | None = None) -> JobCreated:
    """dispatch's `job.created`: an onsite P3 tractor job in the north. Without `dealer_id`, as dispatch may send
    it (the request decides whose)."""
    return JobCreated(
        job_id=job_id,
        request_id=request_id,
        mode=ServiceMode.onsite,
        priority=Priority.P3,
        region="north",
        product_line="tractor",
        dealer_id=dealer_id,
    )
