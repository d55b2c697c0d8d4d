"""The in-process broker keeps what the relay and the consumers rely on of Kafka: a key's records on the partition
`send()` would choose and in order, consumer groups sharing partitions and resuming at their committed offsets,
and a commit refused for a partition a rebalance took away. (The relay and consumer suites run on it and on real
Kafka alike: `shared/tests/test_relay.py`, `test_consumer.py`.)"""

import uuid

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from shared.messaging import memory
from shared.messaging.kafka import manual_commit_consumer, reliable_producer
from shared.messaging.partitioning import default_partition


@pytest.fixture
def bootstrap():
    address = f"{memory.SCHEME}test-{uuid.uuid4().hex[:8]}"
    memory.broker_for(address).create_topics(["t.events"], partitions=3)
    yield address
    memory.forget(address)


async def send(bootstrap: str, *keys: str) -> None:
    producer = reliable_producer(bootstrap, "test")
    await producer.start()
    for i, key in enumerate(keys):
        await producer.send_and_wait("t.events", value=str(i).encode(), key=key.encode())
    await producer.stop()


async def read_all(consumer) -> dict[TopicPartition, list]:
    found: dict[TopicPartition, list] = {}
    while batches := await consumer.getmany(timeout_ms=10):
        for tp, records in batches.items():
            found.setdefault(tp, []).extend(records)
    return found


async def test_a_keys_records_land_on_the_partition_send_would_choose_in_the_order_sent(bootstrap):
    await send(bootstrap, "a", "b", "a", "c", "a")
    consumer = manual_commit_consumer(bootstrap, "g", ["t.events"], "test")
    await consumer.start()
    found = await read_all(consumer)
    await consumer.stop()
    where = TopicPartition("t.events", default_partition(b"a", [0, 1, 2]))
    assert [r.value for r in found[where] if r.key == b"a"] == [b"0", b"2", b"4"]
    assert [r.offset for r in found[where]] == list(range(len(found[where])))
    assert sum(len(records) for records in found.values()) == 5


async def test_a_restarted_member_resumes_at_its_groups_committed_offset_and_a_new_group_reads_from_the_start(
    bootstrap,
):
    await send(bootstrap, *(f"k{i}" for i in range(9)))
    first = manual_commit_consumer(bootstrap, "g", ["t.events"], "test")
    await first.start()
    batches = await first.getmany(timeout_ms=10, max_records=4)
    await first.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
    await first.stop()

    restarted = manual_commit_consumer(bootstrap, "g", ["t.events"], "test")
    await restarted.start()
    rest = await read_all(restarted)
    await restarted.stop()
    assert sum(map(len, batches.values())) + sum(map(len, rest.values())) == 9, "nothing read twice, nothing lost"

    fresh = manual_commit_consumer(bootstrap, "other", ["t.events"], "test")
    await fresh.start()
    assert sum(map(len, (await read_all(fresh)).values())) == 9
    await fresh.stop()


async def test_members_of_a_group_share_the_partitions_and_a_commit_for_a_partition_taken_away_fails(bootstrap):
    one = manual_commit_consumer(bootstrap, "g", ["t.events"], "one")
    await one.start()
    assert len(one.assignment()) == 3
    two = manual_commit_consumer(bootstrap, "g", ["t.events"], "two")
    await two.start()
    assert one.assignment() | two.assignment() == {TopicPartition("t.events", p) for p in range(3)}
    assert not one.assignment() & two.assignment()
    taken = next(iter(two.assignment()))
    with pytest.raises(CommitFailedError):
        await one.commit({taken: 1})
    await two.stop()
    assert len(one.assignment()) == 3, "the partitions of a member that left go to the others"
    await one.stop()
