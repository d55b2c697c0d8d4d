"""The relay picks partitions itself (it hands the producer whole per-partition batches): the same ones as
aiokafka's default partitioner, or one aggregate's events would change partition when the relay changed."""

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from shared.messaging.partitioning import default_partition, murmur2


def test_murmur2_equals_aiokafkas_for_keys_of_every_length_up_to_200_bytes():
    rng = random.Random(14)
    for length in range(201):
        for _ in range(5):
            key = bytes(rng.randrange(256) for _ in range(length))
            assert murmur2(key) == aiokafka_murmur2(key), key


def test_the_default_partition_of_a_key_is_the_one_aiokafkas_partitioner_picks():
    rng = random.Random(15)
    for count in (1, 2, 3, 7, 12):
        partitions = list(range(count))
        for _ in range(300):
            key = f"stream-{rng.getrandbits(64):x}".encode()
            assert default_partition(key, partitions) == DefaultPartitioner()(key, partitions, partitions)
