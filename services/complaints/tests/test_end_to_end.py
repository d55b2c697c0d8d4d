"""Across services, on one broker: the real intake app in-process receives a dealer's request; dispatch's part
(the job and its revisit) is played by the test as dispatch publishes it; complaints links, opens and scopes."""

import uuid

from services.complaints.domain import revisit_complaint_id
from services.complaints.tests.conftest import Complaints, revisit_done, start
from services.intake.app import create_app as create_intake
from services.intake.tests.conftest import Intake, intake_settings
from shared.testing.app import running
from shared.testing.contract_events import job_created
from shared.testing.kafka import envelope_for, publish


async def test_a_dealers_customer_unhappy_at_the_revisit_gets_a_complaint_the_dealer_can_follow(
    tmp_path, kafka_bootstrap
):
    dealer = f"D-{uuid.uuid4().hex[:6]}"
    intake_app = create_intake(intake_settings(tmp_path, kafka_bootstrap), configure_logs=False)
    settings, complaints_app = start(tmp_path, kafka_bootstrap)
    async with running(intake_app) as intake_client, running(complaints_app) as complaints_client:
        intake = Intake(intake_client, intake_app.state.settings, intake_app)
        complaints = Complaints(complaints_client, settings, complaints_app)
        dealer_token = complaints.auth("dealer", dealer_id=dealer)

        request = (await intake.open(headers=intake.auth("dealer", dealer_id=dealer))).json()
        assert (
            await intake.client.post(
                f"/v1/service-requests/{request['id']}/triage", json={"mode": "onsite"}, headers=intake.agent
            )
        ).status_code == 200
        await complaints.knows(request_id=request["id"])  # learned from intake.events

        # The dealer complains about the wait, through complaints' API, about its own request.
        about_delay = await complaints.open(
            headers=dealer_token, channel="dealer", request_id=request["id"], category="delay", severity="serious"
        )
        assert about_delay.status_code == 201, about_delay.text
        assert about_delay.json()["dealer_id"] == dealer

        # dispatch: the job, done and followed up; the customer is unhappy.
        job_id = f"job-{uuid.uuid4()}"
        await publish(
            kafka_bootstrap,
            envelope_for(job_created(job_id, request["id"], dealer), source="dispatch"),
            envelope_for(revisit_done(job_id, request["id"], 1, "still leaking"), source="dispatch"),
        )
        from_revisit = await complaints.until(revisit_complaint_id(job_id), lambda v: True)
        assert (
            from_revisit["source"],
            from_revisit["request_id"],
            from_revisit["job_id"],
            from_revisit["dealer_id"],
        ) == ("revisit", request["id"], job_id, dealer)

        # The dealer follows both; another dealer sees neither.
        mine = (await complaints.client.get(f"/v1/complaints?request_id={request['id']}", headers=dealer_token)).json()
        assert {c["id"] for c in mine["items"]} == {about_delay.json()["id"], from_revisit["id"]}
        assert (await complaints.get(from_revisit["id"], dealer_token)).status_code == 200
        stranger = complaints.auth("dealer", dealer_id=f"{dealer}-other")
        assert (await complaints.get(from_revisit["id"], stranger)).status_code == 404
        assert (await complaints.client.get(f"/v1/complaints?request_id={request['id']}", headers=stranger)).json()[
            "items"
        ] == []

        # The officer works the revisit's complaint linked to the job the agent now names, too.
        linked = await complaints.open(job_id=job_id, category="quality")
        assert (linked.json()["request_id"], linked.json()["dealer_id"]) == (request["id"], dealer)
        resolved = await complaints.act(from_revisit["id"], "resolve", {"resolution": "second visit, new seal"})
        assert resolved.json()["status"] == "resolved"
