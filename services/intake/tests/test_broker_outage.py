"""Kafka down: the API keeps accepting; Kafka back: the relay catches up, and no accepted request's event is
lost. Uses a broker of its own, so that stopping it does not disturb the rest of the suite."""

import asyncio

import pytest

from deploy.kafka.launcher import LocalKafkaBroker
from services.intake.app import create_app
from services.intake.tests.conftest import Intake, intake_settings
from shared.contracts.topics import ALL_TOPICS, INTAKE
from shared.messaging.kafka import ensure_topics
from shared.testing.app import eventually, running
from shared.testing.kafka import collect, headers_of


@pytest.fixture
async def own_broker(tmp_path):
    broker = LocalKafkaBroker(data_dir=tmp_path / "kafka")
    await asyncio.to_thread(broker.start)
    await ensure_topics(broker.bootstrap, ALL_TOPICS, partitions=3)
    yield broker
    await asyncio.to_thread(broker.close)


async def test_requests_accepted_while_kafka_is_down_reach_the_topic_once_it_is_back(tmp_path, own_broker):
    settings = intake_settings(tmp_path, own_broker.bootstrap)
    app = create_app(settings, configure_logs=False)
    async with running(app) as client:
        intake = Intake(client, settings, app)
        before = [(await intake.open()).json()["id"] for _ in range(5)]
        relay = app.state.runtime.relay
        await eventually(relay.backlog, until=lambda n: n == 0)

        await asyncio.to_thread(own_broker.stop)
        during = []
        for _ in range(20):
            response = await asyncio.wait_for(intake.open(), timeout=5)
            assert response.status_code == 201, "the API keeps accepting while Kafka is down"
            during.append(response.json()["id"])
        await asyncio.sleep(2)
        assert await relay.backlog() == 20, "nothing is lost: the events wait in the outbox"

        await asyncio.to_thread(own_broker.start)
        await eventually(relay.backlog, until=lambda n: n == 0, timeout=60)
        after = (await intake.open()).json()["id"]
        await eventually(relay.backlog, until=lambda n: n == 0, timeout=20)

    wanted = set(before + during + [after])
    records = await collect(
        own_broker.bootstrap, INTAKE, lambda r: r.key.decode() in wanted, expected=len(wanted), settle=1.0, timeout=30
    )
    received = [r.key.decode() for r in records if headers_of(r)["ce_type"] == "service_request.received"]
    assert set(received) == wanted, "every accepted request's event reached the topic"
    assert len(received) == len(wanted), "and no event was published twice"
