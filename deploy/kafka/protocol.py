"""A tiny raw Kafka protocol client, just enough to tell whether a broker really serves requests.

Only the stdlib: it sends ApiVersions v0 and a non-flexible Metadata request (v1, or v4 when the
broker dropped v1) over a plain socket and checks that the broker answers and lists itself.
"""

from __future__ import annotations

import socket
import struct

_API_METADATA = 3
_API_VERSIONS = 18
_CLIENT_ID = b"servicetrail-launcher"


class KafkaProtocolError(Exception):
    """The broker answered with something other than a healthy response."""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise KafkaProtocolError("connection closed by the broker")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _call(sock: socket.socket, api_key: int, api_version: int, correlation_id: int, body: bytes) -> bytes:
    """Send one request (header v1) and return the response body after the correlation id."""
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(_CLIENT_ID)) + _CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    data = _recv_exact(sock, size)
    (received_id,) = struct.unpack_from(">i", data)
    if received_id != correlation_id:
        raise KafkaProtocolError(f"correlation id {received_id} != {correlation_id}")
    return data[4:]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        length = self.take(">h")
        if length < 0:
            return None
        value = self.data[self.pos : self.pos + length].decode()
        self.pos += length
        return value


def api_versions(sock: socket.socket) -> dict[int, tuple[int, int]]:
    """ApiVersions v0: map of api key -> (min version, max version)."""
    reader = _Reader(_call(sock, _API_VERSIONS, 0, 1, b""))
    error = reader.take(">h")
    if error:
        raise KafkaProtocolError(f"ApiVersions error code {error}")
    versions: dict[int, tuple[int, int]] = {}
    for _ in range(reader.take(">i")):
        key, low, high = reader.take(">h"), reader.take(">h"), reader.take(">h")
        versions[key] = (low, high)
    return versions


def metadata_brokers(sock: socket.socket, versions: dict[int, tuple[int, int]]) -> list[tuple[int, str, int]]:
    """Metadata without topics: the (node id, host, port) of every live broker."""
    low, high = versions.get(_API_METADATA, (0, -1))
    if low <= 1 <= high:
        version, body = 1, struct.pack(">i", 0)
    elif low <= 4 <= high:
        version, body = 4, struct.pack(">ib", 0, 0)
    else:
        raise KafkaProtocolError(f"no non-flexible Metadata version in {low}..{high}")
    reader = _Reader(_call(sock, _API_METADATA, version, 2, body))
    if version >= 3:
        reader.take(">i")  # throttle_time_ms
    brokers: list[tuple[int, str, int]] = []
    for _ in range(reader.take(">i")):
        node_id, host, port = reader.take(">i"), reader.string() or "", reader.take(">i")
        reader.string()  # rack
        brokers.append((node_id, host, port))
    return brokers


def broker_is_ready(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when the broker accepts a connection, answers ApiVersions and lists at least one broker."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return bool(metadata_brokers(sock, api_versions(sock)))
    except (OSError, KafkaProtocolError, struct.error):
        return False
