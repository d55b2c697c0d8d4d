"""Kafka's default partition of a keyed record (murmur2 of the key, as the Java client and aiokafka's
`DefaultPartitioner` compute it), for the relay, which hands the producer whole per-partition batches and so
picks the partition itself: one aggregate's events must keep landing on the partition `send()` would choose."""

from __future__ import annotations

from struct import unpack_from

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 (seed 0x9747b28c) of `data`, equal to `aiokafka.partitioner.murmur2`. The words are unpacked
    in one C call and the masks are folded together: about half the cost of aiokafka's byte-by-byte loop."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    for k in unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) ^ ((k * _M) & _MASK)) & _MASK
    tail = length & 3
    if tail:
        base = words << 2
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def default_partition(key: bytes, partitions: list[int]) -> int:
    """The partition of `partitions` (all of the topic's, sorted) that the default partitioner gives `key`."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
