"""The analytics pages in a real headless browser (Debian's chromium): the DOM a page has drawn after its
scripts ran (`dump_dom`, read with `Elements`) and what it looks like (`screenshot`)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from html.parser import HTMLParser

from shared.testing.chromium import CHROMIUM, headless_arguments


class Elements(HTMLParser):
    """Elements of the dumped DOM: (tag, attributes, text inside)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict, list[str]]] = []
        self._open: list[tuple[str, dict, list[str]]] = []

    def handle_starttag(self, tag, attrs):
        element: tuple[str, dict, list[str]] = (tag, dict(attrs), [])
        self.found.append(element)
        if tag not in ("br", "input", "meta", "link", "circle", "rect", "line", "polyline"):
            self._open.append(element)

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for element in self._open:
            element[2].append(data)

    def text_of(self, predicate) -> list[str]:
        return ["".join(text).strip() for tag, attrs, text in self.found if predicate(tag, attrs)]


async def _headless(url: str, profile: str, *options: str) -> bytes:
    """Chromium on `url` with a profile of its own, offline but for the page, the page's timers run through 20 s
    of virtual time; returns what it prints (fails the test on a non-zero exit, with its last words)."""
    assert CHROMIUM is not None, "the page tests need Debian's chromium: apt-get install -y chromium"
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *headless_arguments(profile),
        "--virtual-time-budget=20000",
        *options,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode()[-2000:]
    return out


async def dump_dom(url: str) -> str:
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        return (await _headless(url, profile, "--disable-quic", "--dump-dom")).decode()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


async def screenshot(url: str) -> bytes:
    """A 1280×1400 PNG of the page, scrollbars hidden."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        path = os.path.join(profile, "shot.png")
        await _headless(url, profile, "--hide-scrollbars", "--window-size=1280,1400", f"--screenshot={path}")
        with open(path, "rb") as file:
            return file.read()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
