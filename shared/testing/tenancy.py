"""Tenant probes: every documented route, tried with every multi-role dealer token against another dealer's
rows, must refuse (403/404/422) or list nothing of it, and write nothing (design.md, Auth: a dealer token is
confined to its dealer whatever other roles it carries)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from fastapi import FastAPI

OTHER_ROLES = ("agent", "dispatcher", "technician", "warranty_officer", "complaints_officer", "analyst")
OPS = frozenset({"/healthz", "/readyz", "/metrics"})

Probe = tuple[str, Any]  # (url, JSON body or None)


def routes_of(app: FastAPI) -> set[tuple[str, str]]:
    """(METHOD, path) of every documented operation but the ops endpoints."""
    return {(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops if path not in OPS}


async def leaks(
    client: httpx.AsyncClient,
    app: FastAPI,
    probes: Mapping[tuple[str, str], Probe],
    token_for: Callable[[str], dict[str, str]],
    count_writes: Callable[[], Awaitable[int]],
    secrets: tuple[str, ...],
) -> list[tuple[str, str, str, int, str, str]]:
    """Try every probe with the token of every other role; return what was not refused, or wrote. A list (200)
    passes when it shows none of `secrets` (the other dealer's ids). Fails outright when a route has no probe."""
    missing = routes_of(app) - set(probes)
    assert not missing, f"routes without a tenant probe: {sorted(missing)}"
    found = []
    for role in OTHER_ROLES:
        headers = token_for(role)
        for (method, route), (url, body) in probes.items():
            before = await count_writes()
            if isinstance(body, str):  # a file upload (bulk import)
                answer = await client.request(
                    method, url, content=body.encode(), headers={**headers, "Content-Type": "text/csv"}
                )
            else:
                answer = await client.request(method, url, json=body, headers=headers)
            refused = answer.status_code in (403, 404, 422)
            harmless = answer.status_code == 200 and not any(secret in answer.text for secret in secrets)
            wrote = await count_writes() != before
            if wrote or not (refused or harmless):
                found.append((role, method, route, answer.status_code, "wrote" if wrote else "", answer.text[:160]))
    return found
