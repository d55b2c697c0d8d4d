"""`GET /dashboard`: one page a service manager reads at a glance. Static files served by the app itself (no
CDN, works offline); the page calls the views with the token given in its URL fragment (`#token=…`) or typed
into it, so the page holds no data of its own and needs no auth to load."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from shared.http.problems import Problem

STATIC = Path(__file__).parent / "static"

router = APIRouter(tags=["dashboard"])

_FILES = {
    "common.js": "text/javascript; charset=utf-8",  # both pages' DOM helpers, filter form and `api`
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "process.js": "text/javascript; charset=utf-8",
    "process.css": "text/css; charset=utf-8",
}


@router.get("/dashboard", include_in_schema=False)
async def dashboard_page() -> FileResponse:
    return FileResponse(
        STATIC / "dashboard.html", media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


@router.get("/dashboard/process", include_in_schema=False)
async def process_page() -> FileResponse:
    """The Process page: the chain of hand-offs with their waiting times, the bottleneck, the findings."""
    return FileResponse(
        STATIC / "process.html", media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


@router.get("/dashboard/{name}", include_in_schema=False)
async def dashboard_asset(name: str) -> FileResponse:
    if name not in _FILES:
        raise Problem(404, f"/dashboard/{name} does not exist", slug="not-found")
    return FileResponse(STATIC / name, media_type=_FILES[name], headers={"Cache-Control": "no-cache"})
