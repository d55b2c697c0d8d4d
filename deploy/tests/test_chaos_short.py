"""The chaos suite's short profile: its own broker and the five services as processes; under load the broker is
stopped (SIGSTOP) for a few seconds, intake is killed -9 with commands in flight and restarted, and duplicates
and poison are put on every topic. Then nothing acknowledged is lost and nothing is counted twice."""

import pytest

from deploy.chaos.invariants import table
from deploy.chaos.runs import short_profile

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


async def test_a_stalled_broker_a_killed_service_duplicates_and_poison_lose_nothing_and_double_nothing():
    lines: list[str] = []
    [report] = await short_profile(log=lines.append)
    figures = report.figures
    explain = "\n".join(lines) + "\n" + table([report])

    assert report.acknowledged >= 60, explain  # the load really ran, and the faults happened under it
    assert figures["retried key → original"].checked > 0, explain
    assert figures["poison in DLQ + reason"].checked > 0, explain
    assert figures["one job per field request"].checked > 0, explain
    assert figures["acknowledged → stored"].broken == 0, explain
    assert figures["stored → on its topic"].broken == 0, explain
    assert figures["no event id twice"].broken == 0, explain
    assert figures["one job per field request"].broken == 0, explain
    assert figures["one coverage per request"].broken == 0, explain
    assert figures["analytics counts once"].broken == 0, explain
    assert report.ok, explain
