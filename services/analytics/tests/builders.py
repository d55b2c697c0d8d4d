"""Events as intake, dispatch and complaints publish them, with the business time (`time`) and the moment the
source recorded them (`recordedat`) chosen by the test."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from shared.clock import utcnow
from shared.contracts.dispatch import (
    JobAccepted,
    JobArrived,
    JobAssigned,
    JobCompleted,
    JobCreated,
    JobSlaBreached,
    JobSlaBreachWithdrawn,
    RevisitDone,
)
from shared.contracts.intake import (
    Customer,
    Product,
    ServiceRequestCancelled,
    ServiceRequestEscalated,
    ServiceRequestQuoteAccepted,
    ServiceRequestQuoteDeclined,
    ServiceRequestQuoteExpired,
    ServiceRequestQuoteExpiryWithdrawn,
    ServiceRequestQuoteIssued,
    ServiceRequestQuoteRequired,
    ServiceRequestReceived,
    ServiceRequestTriaged,
)
from shared.contracts.warranty import PartRequestBackordered, PartRequestReceived, PartRequestReserved
from shared.events import EventEnvelope
from shared.testing.contract_events import complaint_opened
from shared.testing.kafka import envelope_for


def stamped(data, time: datetime, recorded_at: datetime | None = None, source: str = "test") -> EventEnvelope:
    envelope = envelope_for(data, source=source, time=time)
    return replace(envelope, recordedat=recorded_at or max(time, utcnow()))


def received(
    request_id: str, time: datetime, *, dealer_id: str | None, region: str, product_line: str, **kw
) -> EventEnvelope:
    return stamped(
        ServiceRequestReceived(
            request_id=request_id,
            dealer_id=dealer_id,
            channel="dealer" if dealer_id else "hotline",
            customer=Customer(name="Ann Farmer", phone="+49 170 5550101", region=region),
            product=Product(serial=f"SN-{uuid.uuid4().hex[:8]}", model="T-100", product_line=product_line),
            purchase_date=None,
            symptom="stalls",
            customer_tier="standard",
            urgent=False,
        ),
        time,
        **kw,
    )


def triaged(request_id: str, time: datetime, mode: str = "onsite", priority: str = "P3", **kw) -> EventEnvelope:
    return stamped(ServiceRequestTriaged(request_id=request_id, mode=mode, priority=priority), time, **kw)


def escalated(request_id: str, time: datetime, **kw) -> EventEnvelope:
    return stamped(ServiceRequestEscalated(request_id=request_id, reason="second level"), time, **kw)


def cancelled(request_id: str, time: datetime, **kw) -> EventEnvelope:
    return stamped(ServiceRequestCancelled(request_id=request_id, reason="customer withdrew"), time, **kw)


def job_created(
    job_id: str, request_id: str, time: datetime, *, dealer_id: str | None, region: str, product_line: str, **kw
) -> EventEnvelope:
    return stamped(
        JobCreated(
            job_id=job_id,
            request_id=request_id,
            mode="onsite",
            priority="P3",
            region=region,
            product_line=product_line,
            dealer_id=dealer_id,
        ),
        time,
        source="dispatch",
        **kw,
    )


def assigned(
    job_id: str, request_id: str, time: datetime, *, center_id: str, technician_id: str, **kw
) -> EventEnvelope:
    return stamped(
        JobAssigned(job_id=job_id, request_id=request_id, center_id=center_id, technician_id=technician_id, by="auto"),
        time,
        source="dispatch",
        **kw,
    )


def accepted(job_id: str, request_id: str, time: datetime, technician_id: str, **kw) -> EventEnvelope:
    return stamped(
        JobAccepted(job_id=job_id, request_id=request_id, technician_id=technician_id), time, source="dispatch", **kw
    )


def arrived(job_id: str, request_id: str, time: datetime, technician_id: str, **kw) -> EventEnvelope:
    return stamped(
        JobArrived(job_id=job_id, request_id=request_id, technician_id=technician_id), time, source="dispatch", **kw
    )


def completed(job_id: str, request_id: str, time: datetime, technician_id: str, fixed: bool, **kw) -> EventEnvelope:
    return stamped(
        JobCompleted(
            job_id=job_id,
            request_id=request_id,
            technician_id=technician_id,
            fixed=fixed,
            resolution="done" if fixed else "part on order",
        ),
        time,
        source="dispatch",
        **kw,
    )


def breached(job_id: str, request_id: str, due: datetime, kind: str = "arrive", **kw) -> EventEnvelope:
    return stamped(
        JobSlaBreached(job_id=job_id, request_id=request_id, kind=kind, due=due), due, source="dispatch", **kw
    )


def breach_withdrawn(
    job_id: str, request_id: str, due: datetime, time: datetime, kind: str = "arrive", **kw
) -> EventEnvelope:
    return stamped(
        JobSlaBreachWithdrawn(job_id=job_id, request_id=request_id, kind=kind, due=due), time, source="dispatch", **kw
    )


def revisit(
    job_id: str, request_id: str, time: datetime, satisfaction: int, nps: int | None = None, **kw
) -> EventEnvelope:
    return stamped(
        RevisitDone(job_id=job_id, request_id=request_id, satisfaction=satisfaction, nps=nps, channel="phone"),
        time,
        source="dispatch",
        **kw,
    )


def complaint(
    time: datetime,
    *,
    request_id: str | None = None,
    job_id: str | None = None,
    dealer_id: str | None = None,
    complaint_id: str | None = None,
    **kw,
) -> EventEnvelope:
    data = complaint_opened(
        complaint_id or str(uuid.uuid4()), time, request_id=request_id, job_id=job_id, dealer_id=dealer_id
    )
    return stamped(data, time, source="complaints", **kw)


# --- paid service (intake) and part requests (warranty) ----------------------------------------------------


def quote_required(request_id: str, time: datetime, **kw) -> EventEnvelope:
    return stamped(ServiceRequestQuoteRequired(request_id=request_id, reason="warranty expired"), time, **kw)


def quote_issued(
    request_id: str, quote_id: str, time: datetime, total: str, currency: str = "EUR", **kw
) -> EventEnvelope:
    data = ServiceRequestQuoteIssued.model_validate(
        dict(
            request_id=request_id,
            quote_id=quote_id,
            lines=[{"kind": "labour", "description": "labour", "quantity": 60, "unit_price": total, "amount": total}],
            labour_minutes=60,
            total=total,
            currency=currency,
            valid_until=time + timedelta(days=2),
        )
    )
    return stamped(data, time, **kw)


def quote_accepted(request_id: str, quote_id: str, time: datetime, total: str, currency: str = "EUR", **kw):
    data = ServiceRequestQuoteAccepted(
        request_id=request_id, quote_id=quote_id, channel="dealer", total=total, currency=currency
    )
    return stamped(data, time, **kw)


def quote_declined(request_id: str, quote_id: str, time: datetime, **kw) -> EventEnvelope:
    return stamped(ServiceRequestQuoteDeclined(request_id=request_id, quote_id=quote_id, reason="too dear"), time, **kw)


def quote_expired(request_id: str, quote_id: str, time: datetime, **kw) -> EventEnvelope:
    return stamped(ServiceRequestQuoteExpired(request_id=request_id, quote_id=quote_id, valid_until=time), time, **kw)


def quote_expiry_withdrawn(
    request_id: str, quote_id: str, time: datetime, accepted_at: datetime, **kw
) -> EventEnvelope:
    data = ServiceRequestQuoteExpiryWithdrawn(request_id=request_id, quote_id=quote_id, accepted_at=accepted_at)
    return stamped(data, time, **kw)


def _part_request(job_id: str, request_id: str, part_request_id: str, part_number: str) -> dict:
    return dict(
        part_request_id=part_request_id, job_id=job_id, request_id=request_id, part_number=part_number, quantity=1
    )


def part_reserved(
    job_id: str, request_id: str, part_request_id: str, part_number: str, time: datetime, kind: str = "van", **kw
) -> EventEnvelope:
    data = PartRequestReserved(
        **_part_request(job_id, request_id, part_request_id, part_number),
        location_id=f"{kind}-1",
        location_kind=kind,
        requested_by="T1",
    )
    return stamped(data, time, source="warranty", **kw)


def part_backordered(
    job_id: str, request_id: str, part_request_id: str, part_number: str, time: datetime, **kw
) -> EventEnvelope:
    data = PartRequestBackordered(
        **_part_request(job_id, request_id, part_request_id, part_number), requested_by="T1", reason="no stock"
    )
    return stamped(data, time, source="warranty", **kw)


def part_received(
    job_id: str, request_id: str, part_request_id: str, part_number: str, time: datetime, **kw
) -> EventEnvelope:
    data = PartRequestReceived(
        **_part_request(job_id, request_id, part_request_id, part_number), location_id="van-1", received_by="T1"
    )
    return stamped(data, time, source="warranty", **kw)
