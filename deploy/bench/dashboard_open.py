"""`python -m deploy.bench.dashboard_open [--url http://127.0.0.1:8005] [--repeat 5]`: how long the analytics
dashboard takes to open in a real browser, as a service manager sees it.

Headless Chromium (Debian's) is driven over the DevTools protocol: each round navigates a fresh tab to
`/dashboard#token=…` and waits until the page says it is drawn (`body[data-state]` turns `ready`; `error` fails the
round). Two numbers per round, both from the navigation's start by the page's own clock (`performance.now()`):
- *last view answered*: the latest `responseEnd` of the page's calls to `/v1/views/…` (its eight calls go out
  together, so this is the slowest of them plus the page's own load);
- *drawn*: when the page was seen `ready` (polled every 5 ms inside the page, so at most ~5 ms late).
The first round is a cold start of the browser's cache; the table reports every round and the p50 of the warm ones.

The token is minted for an analyst with the secret the services read (`AUTH_SECRET`, as `make run` uses), or
given with `--token`."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websockets

from shared.auth import mint_token
from shared.settings import ServiceSettings
from shared.testing.chromium import CHROMIUM, headless_arguments

# Resolves once the page is drawn (or failed): [state, drawn at, last view answered at], in ms since navigation.
_DRAWN = """
new Promise((resolve) => {
  const check = () => {
    const state = document.body && document.body.dataset.state;
    if (state === "ready" || state === "error") {
      const views = performance.getEntriesByType("resource").filter((e) => e.name.includes("/v1/views/"));
      resolve([state, performance.now(), Math.max(0, ...views.map((e) => e.responseEnd)), views.length]);
    } else {
      setTimeout(check, 5);
    }
  };
  check();
})
"""


class _DevTools:
    """One DevTools websocket: `call` sends a command and returns its result; events are skipped."""

    def __init__(self, socket: Any) -> None:
        self.socket, self._ids = socket, itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict:
        message_id = next(self._ids)
        await self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})


async def _devtools_port(profile: Path, deadline: float) -> int:
    while time.monotonic() < deadline:
        active = profile / "DevToolsActivePort"
        if active.exists() and active.read_text().strip():
            return int(active.read_text().split()[0])
        await asyncio.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


async def open_times(dashboard_url: str, repeat: int) -> list[dict]:
    """Open `dashboard_url` `repeat` times in one headless Chromium; each round's state and times (ms)."""
    assert CHROMIUM is not None, "needs Debian's chromium: apt-get install -y chromium"
    profile = Path(tempfile.mkdtemp(prefix="chromium-dashboard-"))
    browser = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *headless_arguments(str(profile)),
        "--remote-debugging-port=0",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    rounds = []
    try:
        port = await _devtools_port(profile, time.monotonic() + 30)
        for _ in range(repeat):
            with urllib.request.urlopen(
                urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
            ) as answer:
                target = json.load(answer)
            async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as socket:
                tab = _DevTools(socket)
                await tab.call("Page.enable")
                await tab.call("Page.navigate", url=dashboard_url)
                # The navigation commits before the evaluation runs: a fresh tab evaluates in about:blank until
                # then, which has no `data-state`, so wait for the dashboard's document first.
                while (await tab.call("Runtime.evaluate", expression="location.pathname"))["result"].get(
                    "value"
                ) != "/dashboard":
                    await asyncio.sleep(0.005)
                result = await tab.call("Runtime.evaluate", expression=_DRAWN, awaitPromise=True, returnByValue=True)
                state, drawn, answered, calls = result["result"]["value"]
                rounds.append({"state": state, "drawn_ms": drawn, "answered_ms": answered, "calls": calls})
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/close/{target['id']}"):
                pass
    finally:
        browser.terminate()
        await browser.wait()
        shutil.rmtree(profile, ignore_errors=True)
    return rounds


def summary(rounds: list[dict]) -> str:
    warm = rounds[1:] or rounds
    lines = [
        "| round | state | view calls | last view answered (ms) | drawn (ms) |",
        "|---|---|---|---|---|",
        *[
            f"| {n}{' (cold)' if n == 1 else ''} | {r['state']} | {r['calls']} | {r['answered_ms']:.0f} | "
            f"{r['drawn_ms']:.0f} |"
            for n, r in enumerate(rounds, 1)
        ],
        "",
        f"Warm rounds: drawn p50 {statistics.median(r['drawn_ms'] for r in warm):.0f} ms, "
        f"max {max(r['drawn_ms'] for r in warm):.0f} ms.",
    ]
    return "\n".join(lines)


def dashboard_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/dashboard#token={token}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8005", help="the analytics service")
    parser.add_argument("--token", help="a bearer token (default: an analyst's, minted with AUTH_SECRET)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    token = args.token or mint_token(ServiceSettings().auth_secret, subject="dashboard-bench", roles=["analyst"])
    rounds = asyncio.run(open_times(dashboard_url(args.url, token), args.repeat))
    print(summary(rounds))
    return 0 if all(r["state"] == "ready" for r in rounds) else 1


if __name__ == "__main__":
    raise SystemExit(main())
