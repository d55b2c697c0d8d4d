"""Fallback load generator when wrk is missing: keep-alive HTTP/1.1 over asyncio streams, in this process."""

from __future__ import annotations

import asyncio
import resource
import time
from urllib.parse import urlsplit

from deploy.bench.load import LoadResult
from deploy.bench.payloads import request_body_template


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))]


async def _connection(
    host: str,
    port: int,
    head: str,
    template: str,
    prefix: str,
    worker: int,
    deadline: float,
    latencies: list[float],
    statuses: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    counter = 0
    try:
        while time.perf_counter() < deadline:
            counter += 1
            body = (template % (prefix, worker, counter)).encode()
            started = time.perf_counter()
            writer.write(head.format(len(body)).encode() + body)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses.append(status)
    finally:
        writer.close()


async def _run(url: str, concurrency: int, seconds: float, token: str, prefix: str) -> tuple[list, list, float]:
    parts = urlsplit(url)
    head = (
        f"POST /v1/service-requests HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {{}}\r\n\r\n"
    )
    latencies: list[float] = []
    statuses: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _connection(
                parts.hostname or "127.0.0.1",
                parts.port or 80,
                head,
                request_body_template(),
                prefix,
                worker,
                deadline,
                latencies,
                statuses,
            )
            for worker in range(1, concurrency + 1)
        )
    )
    return latencies, statuses, time.perf_counter() - started


def run_python_load(url: str, concurrency: int, seconds: float, token: str, prefix: str) -> LoadResult:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    latencies, statuses, elapsed = asyncio.run(_run(url, concurrency, seconds, token, prefix))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    latencies.sort()
    created = sum(1 for s in statuses if s == 201)
    return LoadResult(
        concurrency=concurrency,
        requests=len(statuses),
        seconds=elapsed,
        created=created,
        other=len(statuses) - created,
        errors=0,
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        generator_cpu=cpu,
    )
