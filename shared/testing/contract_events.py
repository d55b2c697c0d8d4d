"""Other services' events as tests publish them to the service under test (one builder per event, shared by the
services' suites)."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.contracts.complaints import ComplaintOpened
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


def complaint_opened(
    complaint_id: str,
    opened: datetime,
    *,
    request_id: str | None = None,
    job_id: str | None = None,
    dealer_id: str | None = None,
    acknowledge_within: timedelta = timedelta(hours=1),
    resolve_within: timedelta = timedelta(hours=8),
) -> ComplaintOpened:
    """complaints' `complaint.opened`: a general complaint of delay on the hotline, level 1, `opened` at that
    moment, about a request and/or a job (a complaint about a job only names no dealer: the job's request does)."""
    return ComplaintOpened(
        complaint_id=complaint_id,
        request_id=request_id,
        job_id=job_id,
        dealer_id=dealer_id,
        category="delay",
        severity="general",
        source="hotline",
        level=1,
        ack_due=opened + acknowledge_within,
        resolve_due=opened + resolve_within,
    )
