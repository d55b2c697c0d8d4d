"""Debian's headless Chromium, as the page tests and the dashboard bench start it."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def headless_arguments(profile: str) -> list[str]:
    """A headless Chromium's arguments: no sandbox or GPU, nothing fetched but the page, a profile of its own."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ]
