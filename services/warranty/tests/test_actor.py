"""Who caused each entry of a unit's history (design.md, "Audit"): warranty's own events name the token's user
(with the dealer of a dealer token; a bulk import is whoever ran it) or `system:warranty` for its reactions;
the entries of other services' events keep the actor their CloudEvent carried (`ce_actor`)."""

from datetime import timedelta

from services.warranty.tests.conftest import open_job, received, serial
from shared.contracts.topics import WARRANTY
from shared.testing.kafka import collect, envelope_for, headers_of, publish, subject_is

HEADER = "serial,model,product_line,sold_on,dealer_id\n"


async def test_a_units_history_names_the_importer_the_dealers_technician_and_warranty_itself(warranty):
    sn = serial()
    sold_on = (warranty.today - timedelta(days=90)).isoformat()
    imported = await warranty.client.post(
        "/v1/products/import",
        content=f"{HEADER}{sn},T-100,tractor,{sold_on},D1\n",
        headers={**warranty.officer, "Content-Type": "text/csv"},
    )
    assert imported.status_code == 201, imported.text
    job = await open_job(warranty, sn, dealer_id="D1")
    swapped = await warranty.swap(job, headers=warranty.auth("dealer", dealer_id="D1", sub="tech-lead"))
    assert swapped.status_code == 201, swapped.text

    items = await warranty.wait_for_history(sn, lambda items: any(i["type"] == "part.swapped" for i in items))
    actors = {i["type"]: i["actor"] for i in items}
    assert actors == {
        "product.registered": "user:officer-olga",
        "service_request.received": "system:intake",  # as the test played intake (envelope_for's default)
        "warranty.checked": "system:warranty",
        "job.created": "system:dispatch",
        "job.assigned": "system:dispatch",
        "part.swapped": "user:tech-lead;dealer=D1",
    }
    records = await collect(warranty.kafka, WARRANTY, subject_is(sn), expected=2)
    assert {headers_of(r)["ce_type"]: headers_of(r)["ce_actor"] for r in records} == {
        "product.registered": "user:officer-olga",
        "part.swapped": "user:tech-lead;dealer=D1",
    }


async def test_an_entry_of_another_services_event_keeps_the_actor_it_was_published_with(warranty):
    sn = serial()
    request = received(sn, dealer_id="D1")
    await publish(
        warranty.kafka,
        envelope_for(request, source="intake", actor="user:clerk-7;dealer=D1"),
    )
    items = await warranty.wait_for_history(sn, lambda items: any(i["type"] == "warranty.checked" for i in items))
    assert [(i["type"], i["actor"]) for i in items] == [
        ("service_request.received", "user:clerk-7;dealer=D1"),
        ("warranty.checked", "system:warranty"),
    ]
