"""The one request body and event payload every part of the bench sends, so that sizes match."""

from __future__ import annotations

import json
import uuid
from datetime import date

from shared.contracts.enums import Channel, CustomerTier
from shared.contracts.intake import Customer, Product, ServiceRequestReceived

CUSTOMER = {"name": "Anna Berger", "phone": "+43 660 1234567", "region": "AT-3"}
MODEL = {"model": "HX-2200 Combine", "product_line": "harvester"}
PURCHASE_DATE = "2024-05-17"
SYMPTOM = "Hydraulic pressure drops after about 20 minutes of operation; the warning light flashes."
SERIAL_FORMAT = "SN-%s-%d-%d"  # prefix, load-generator thread, counter: unique across a whole bench run


def request_body_template() -> str:
    """POST /v1/service-requests body with `SERIAL_FORMAT` left in place for the load generator."""
    body = {
        "channel": "dealer",
        "customer": CUSTOMER,
        "product": {"serial": "@SERIAL@", **MODEL},
        "purchase_date": PURCHASE_DATE,
        "symptom": SYMPTOM,
    }
    return json.dumps(body, separators=(",", ":")).replace("@SERIAL@", SERIAL_FORMAT)


def received_event(serial: str) -> ServiceRequestReceived:
    """The `service_request.received` data intake would record for the body above."""
    return ServiceRequestReceived(
        request_id=str(uuid.uuid4()),
        dealer_id=None,
        channel=Channel.dealer,
        customer=Customer(**CUSTOMER),
        product=Product(serial=serial, **MODEL),
        purchase_date=date.fromisoformat(PURCHASE_DATE),
        symptom=SYMPTOM,
        customer_tier=CustomerTier.standard,
        urgent=False,
    )
