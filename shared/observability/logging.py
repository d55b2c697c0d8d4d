"""JSON logs that carry the correlation id (and the trace id when there is one)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from shared.clock import rfc3339, utcnow

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)


@contextmanager
def correlation_scope(value: str | None, trace: str | None = None) -> Iterator[None]:
    token = correlation_id.set(value)
    trace_token = trace_id.set(trace)
    try:
        yield
    finally:
        correlation_id.reset(token)
        trace_id.reset(trace_token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": rfc3339(utcnow()),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (cid := correlation_id.get()) is not None:
            entry["correlation_id"] = cid
        if (tid := trace_id.get()) is not None:
            entry["trace_id"] = tid
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stdout)
    if json_lines:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The relay and consumers log their own Kafka failures once per retry; aiokafka repeats each one.
    logging.getLogger("aiokafka").setLevel("CRITICAL")
    logging.getLogger("uvicorn.access").setLevel("WARNING")
