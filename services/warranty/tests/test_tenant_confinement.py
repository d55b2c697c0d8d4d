"""A dealer token never sees or changes another dealer's sales, swaps, claims, part requests, part returns or
unit history, whatever other roles it carries: every route of warranty, with every multi-role dealer token
(design.md, Auth)."""

from datetime import timedelta

from sqlalchemy import func, select

from services.warranty.tests.conftest import complete_job, open_job, serial
from services.warranty.tests.parts_helpers import Ledger, receive, request_part
from shared.eventstore.tables import events
from shared.testing.tenancy import leaks


async def test_every_route_refuses_another_dealers_rows_to_every_multi_role_dealer_token(warranty):
    sn = serial()
    assert (await warranty.register(sn, warranty.today - timedelta(days=100), dealer_id="D2")).status_code == 201
    job = await open_job(warranty, sn, dealer_id="D2", at=warranty.clock.now() - timedelta(days=1, hours=3))
    swap = (await warranty.swap(job)).json()
    ledger = await Ledger(warranty).set_up()
    await receive(warranty, ledger.warehouse, ledger.part, 2)
    part_request = (await request_part(warranty, job, ledger.part, headers=warranty.officer)).json()
    assert part_request["location_id"] == ledger.warehouse, part_request
    await complete_job(warranty, job, at=warranty.clock.now() - timedelta(days=1))
    claim = await warranty.client.post(
        "/v1/claims",
        json={"job_id": job.job_id, "labour_minutes": 30, "swap_ids": [swap["id"]]},
        headers=warranty.dealer("D2"),
    )
    assert claim.status_code == 201, claim.text
    claim_id = claim.json()["id"]
    part_return = await warranty.client.post(
        "/v1/part-returns",
        json={"swap_id": swap["id"], "old_part_serial": "OLD-9", "condition": "defective"},
        headers=warranty.dealer("D2"),
    )
    assert part_return.status_code == 201, part_return.text
    request_path = f"/v1/part-requests/{part_request['id']}"
    d2_csv = f"serial,model,product_line,sold_on,dealer_id\nSN-T-{sn},T-100,tractor,2025-01-01,D2\n"
    probes = {
        ("POST", "/v1/products"): (
            "/v1/products",
            {"serial": f"X{sn}", "model": "T", "product_line": "tractor", "sold_on": "2025-01-01", "dealer_id": "D2"},
        ),
        ("GET", "/v1/products"): ("/v1/products?dealer_id=D2", None),
        ("POST", "/v1/products/import"): ("/v1/products/import", d2_csv),
        ("GET", "/v1/products/{serial}"): (f"/v1/products/{sn}", None),
        ("POST", "/v1/warranty-policies"): ("/v1/warranty-policies", {"product_line": "tractor", "months": 1}),
        ("GET", "/v1/warranty-policies"): ("/v1/warranty-policies", None),  # reference data, no dealer's
        ("GET", "/v1/warranty-policies/{product_line}"): ("/v1/warranty-policies/tractor", None),
        # Coverage answers for any serial by design (a unit is often repaired by another dealer): not probed
        # for secrets, only that it writes nothing.
        ("GET", "/v1/coverage"): ("/v1/coverage?serial=no-such-serial", None),
        ("POST", "/v1/part-swaps"): (
            "/v1/part-swaps",
            {
                "job_id": job.job_id,
                "request_id": job.request_id,
                "serial": sn,
                "part_number": "P-1",
                "part_category": "pump",
                "quantity": 1,
                "unit_cost": "1.00",
            },
        ),
        ("GET", "/v1/part-swaps"): (f"/v1/part-swaps?job_id={job.job_id}", None),
        ("GET", "/v1/part-swaps/{swap_id}"): (f"/v1/part-swaps/{swap['id']}", None),
        ("POST", "/v1/claims"): ("/v1/claims", {"job_id": job.job_id, "labour_minutes": 1}),
        ("GET", "/v1/claims"): ("/v1/claims?dealer_id=D2", None),
        ("GET", "/v1/claims/{claim_id}"): (f"/v1/claims/{claim_id}", None),
        ("POST", "/v1/claims/{claim_id}/approve"): (f"/v1/claims/{claim_id}/approve", {"reason": "x"}),
        ("POST", "/v1/claims/{claim_id}/reject"): (f"/v1/claims/{claim_id}/reject", {"reason": "x"}),
        ("POST", "/v1/returns"): ("/v1/returns", {"serial": sn, "kind": "return", "reason": "x"}),
        ("GET", "/v1/units/{serial}/history"): (f"/v1/units/{sn}/history", None),
        # The catalogue is reference data every dealer may read (quotes are priced from it), never change.
        ("POST", "/v1/parts"): (
            "/v1/parts",
            {"part_number": ledger.part, "name": "x", "category": "pump", "unit_price": "1.00"},
        ),
        ("GET", "/v1/parts"): ("/v1/parts", None),
        ("GET", "/v1/parts/{part_number}"): (f"/v1/parts/{ledger.part}", None),
        # Locations and stock are the manufacturer's: a dealer token neither changes nor reads them.
        ("POST", "/v1/stock-locations"): ("/v1/stock-locations", {"id": "W-D1", "kind": "warehouse"}),
        ("GET", "/v1/stock-locations"): ("/v1/stock-locations", None),
        ("POST", "/v1/stock/receipts"): (
            "/v1/stock/receipts",
            {"location_id": ledger.warehouse, "part_number": ledger.part, "quantity": 1},
        ),
        ("POST", "/v1/stock/transfers"): (
            "/v1/stock/transfers",
            {
                "from_location_id": ledger.warehouse,
                "to_location_id": ledger.center,
                "part_number": ledger.part,
                "quantity": 1,
            },
        ),
        ("GET", "/v1/stock"): (f"/v1/stock?location_id={ledger.warehouse}", None),
        ("POST", "/v1/part-requests"): (
            "/v1/part-requests",
            {"job_id": job.job_id, "part_number": ledger.part, "quantity": 1},
        ),
        ("GET", "/v1/part-requests"): (f"/v1/part-requests?job_id={job.job_id}", None),
        ("GET", "/v1/part-requests/{part_request_id}"): (request_path, None),
        ("POST", "/v1/part-requests/{part_request_id}/ship"): (f"{request_path}/ship", None),
        ("POST", "/v1/part-requests/{part_request_id}/receive"): (f"{request_path}/receive", {}),
        ("POST", "/v1/part-returns"): (
            "/v1/part-returns",
            {"swap_id": swap["id"], "old_part_serial": "OLD-9", "condition": "defective"},
        ),
        ("GET", "/v1/part-returns"): (f"/v1/part-returns?swap_id={swap['id']}", None),
        ("GET", "/v1/part-returns/{return_id}"): (part_return.headers["location"], None),
    }

    async def stored() -> int:
        async with warranty.app.state.runtime.db.read() as conn:
            return (await conn.execute(select(func.count()).select_from(events))).scalar_one()

    found = await leaks(
        warranty.client,
        warranty.app,
        probes,
        lambda role: warranty.auth("dealer", role, dealer_id="D1", sub="T1"),
        stored,
        (sn, claim_id, swap["id"], job.job_id, part_request["id"], part_return.json()["id"]),
    )
    assert found == []
