"""`make demo` (`python -m deploy.demo`): fill a running Servicetrail with a realistic month of traffic through the
public HTTP APIs, so that the dashboard (http://127.0.0.1:8005/dashboard) has something to show.

Service centers and technicians (dispatch), warranty policies and sold units (warranty), then for every day of
the last month: requests opened by dealers and the hotline (backdated with `occurred_at`), triaged (some by
phone, some escalated or cancelled), out-of-warranty ones quoted (accepted, declined or left to expire; late
acceptances synced after the quote's expiry withdrawing it), their jobs accepted, visited (sometimes twice),
completed, revisited; parts (`demo_parts`): a catalogue, a warehouse, center stores and vans with their stock,
part requests served from the van or reserved at a store or backordered until a delivery, shipped, received and
fitted at a second visit, defective parts returned; claims; complaints. A service that is not up is skipped
with a message.

Base URLs from INTAKE_URL, DISPATCH_URL, WARRANTY_URL, COMPLAINTS_URL, ANALYTICS_URL (defaults 127.0.0.1:8001-
8005); tokens minted with AUTH_SECRET. Options: --days, --per-day, --seed, --concurrency."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from deploy import demo_parts
from shared.auth import mint_token
from shared.clock import rfc3339
from shared.settings import ServiceSettings

SERVICES = {"intake": 8001, "dispatch": 8002, "warranty": 8003, "complaints": 8004, "analytics": 8005}
REGIONS = ("north", "south", "east", "west")
LINES = {"tractor": "T-7", "baler": "B-2", "washer": "W-90", "dryer": "D-40"}
DEALERS = ("AGRO-NORD", "FARMTECH", "HOMEPLUS", "SUEDHAUS", "KITCHENCO")
SATISFACTION = ((5, 45), (4, 33), (3, 12), (2, 6), (1, 4))

FAILED_VISIT_REASONS = [
    "parts_unavailable",
    "customer_absent",
    "site_not_ready",
    "needs_expert",
    "wrong_diagnosis",
    "other",
]
FAILED_VISIT_WEIGHTS = [40, 20, 15, 10, 10, 5]


@dataclass
class Demo:
    urls: dict[str, str]
    secret: str
    rng: random.Random
    up: set[str] = field(default_factory=set)
    counts: Counter = field(default_factory=Counter)
    why: dict[str, str] = field(default_factory=dict)  # the first refusal's detail of each kind
    technicians: dict[str, list[str]] = field(default_factory=dict)  # region → technician ids

    def token(self, *roles: str, sub: str = "demo", dealer_id: str | None = None) -> dict[str, str]:
        value = mint_token(self.secret, subject=sub, roles=list(roles), dealer_id=dealer_id)
        return {"Authorization": f"Bearer {value}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.token("admin")

    async def call(
        self,
        client: httpx.AsyncClient,
        service: str,
        method: str,
        path: str,
        *,
        headers: dict | None = None,
        ok: tuple[int, ...] = (200, 201),
        eventually: bool = False,
        retry: tuple[int, ...] = (),
        **kw,
    ) -> dict | None:
        """One call; failures are counted and reported at the end, never fatal. `eventually`: a 404 may only
        mean that the service has not yet read the event that tells it of the thing (a job): try again; so
        may the statuses in `retry` (what the service answers before it has read that event)."""
        again = (404, *retry) if eventually else retry
        for _ in range(40 if again else 1):
            try:
                response = await client.request(method, self.urls[service] + path, headers=headers or self.admin, **kw)
            except httpx.HTTPError as exc:
                self.counts[f"{service}: {type(exc).__name__}"] += 1
                return None
            if response.status_code not in again:
                break
            await asyncio.sleep(0.3)
        segments = path.split("?")[0].strip("/").split("/")[1:]
        label = f"{service} {method} {segments[0]}" + (f" …/{segments[-1]}" if len(segments) > 2 else "")
        if response.status_code not in ok:
            refused = f"{label} → {response.status_code}"
            self.counts[refused] += 1
            if refused not in self.why:
                try:
                    self.why[refused] = str(response.json().get("detail", ""))[:200]
                except ValueError:
                    self.why[refused] = response.text[:200]
            return None
        self.counts[label] += 1
        return response.json() if response.content else {}


def at(moment: datetime) -> str:
    return rfc3339(moment)


async def check_services(demo: Demo, client: httpx.AsyncClient) -> None:
    for name, url in demo.urls.items():
        try:
            if (await client.get(f"{url}/healthz", timeout=3)).status_code == 200:
                demo.up.add(name)
                continue
        except httpx.HTTPError:
            pass
        print(f"  {name:<10} {url} is not up: skipped")
    print("  up: " + ", ".join(sorted(demo.up)))


async def reference_data(demo: Demo, client: httpx.AsyncClient, opened: datetime) -> None:
    """Centers and technicians; warranty policies; the parts catalogue, stores and vans with their opening
    stock (received at `opened`, the day before the month)."""
    crews: dict[str, list[str]] = {}  # center id → its technicians (each with a van)
    if "dispatch" in demo.up:
        for region in REGIONS:
            centers = [
                (f"RC-{region.upper()}", "repair_center", None),
                (f"AD-{region.upper()}", "authorized_dealer", demo.rng.choice(DEALERS)),
            ]
            demo.technicians[region] = []
            for center_id, kind, dealer in centers:
                await demo.call(
                    client,
                    "dispatch",
                    "POST",
                    "/v1/service-centers",
                    ok=(201, 409),
                    json={
                        "id": center_id,
                        "name": f"{kind.replace('_', ' ').title()} {region}",
                        "region": region,
                        "kind": kind,
                        "dealer_id": dealer,
                    },
                )
                for n in range(2):
                    tech = f"TECH-{region[:2].upper()}{center_id[:2]}{n}"
                    skills = list(LINES) if n == 0 else demo.rng.sample(list(LINES), 2)
                    await demo.call(
                        client,
                        "dispatch",
                        "POST",
                        "/v1/technicians",
                        ok=(201, 409),
                        json={"id": tech, "center_id": center_id, "name": f"Technician {tech}", "skills": skills},
                    )
                    demo.technicians[region].append(tech)
                    crews.setdefault(center_id, []).append(tech)
    if "warranty" in demo.up:
        await demo_parts.set_up(demo, client, crews, opened)
        for line in LINES:
            await demo.call(
                client,
                "warranty",
                "POST",
                "/v1/warranty-policies",
                ok=(201, 409),
                json={
                    "product_line": line,
                    "months": 24,
                    "part_months": {"motor": 60},
                    "excluded_categories": ["filter", "belt"],
                },
            )


async def wait_for_job(demo: Demo, client: httpx.AsyncClient, request_id: str) -> dict | None:
    """Dispatch creates the job from intake's event: poll for it."""
    for _ in range(60):
        page = await demo.call(client, "dispatch", "GET", f"/v1/jobs?request_id={request_id}", ok=(200,))
        if page and page.get("items"):
            return page["items"][0]
        await asyncio.sleep(0.25)
    demo.counts["dispatch: no job appeared"] += 1
    return None


async def triage_settled(demo: Demo, client: httpx.AsyncClient, request_id: str) -> dict | None:
    """intake holds field work back until warranty's verdict is in: poll until it has decided (cleared for
    dispatch, or waiting for a quote when the unit is not covered)."""
    for _ in range(60):
        view = await demo.call(client, "intake", "GET", f"/v1/service-requests/{request_id}", ok=(200,))
        if view is None:
            return None
        if view["status"] == "awaiting_quote" or not view.get("dispatch_held"):
            return view
        await asyncio.sleep(0.25)
    demo.counts["intake: no coverage verdict appeared"] += 1
    return None


async def paid_service(
    demo: Demo, client: httpx.AsyncClient, request: dict, t: datetime, now: datetime, dealer: str | None
) -> datetime | None:
    """Out of warranty: we quote the labour, then the customer decides (through the dealer, or the hotline) —
    mostly yes, sometimes no, now and then not at all (the quote expires by itself). The acceptance's time, or
    None when there is no job to do."""
    rng, url, agent = demo.rng, f"/v1/service-requests/{request['id']}", demo.token("agent")
    t += timedelta(minutes=rng.uniform(10, 120))
    if t > now:
        return None
    body = {
        "labour_minutes": rng.choice([30, 45, 60, 90, 120, 180]),
        "parts": demo_parts.quote_parts(demo),
        "note": "paid repair",
        "occurred_at": at(t),
    }
    # A 422 for a part may only mean that intake has not yet read the catalogue's `part.registered`.
    quoted = await demo.call(client, "intake", "POST", f"{url}/quote", headers=agent, retry=(422,), json=body)
    if not quoted:
        return None
    decision = rng.random()
    decided = t + timedelta(hours=min(rng.expovariate(1 / 20), 24 * 13))
    valid_until = datetime.fromisoformat(quoted["quote"]["valid_until"].replace("Z", "+00:00"))
    if decision < 0.1 or decided > now:
        return None  # undecided: it expires when its validity ends
    decider = demo.token("dealer", dealer_id=dealer) if dealer else agent
    if decision < 0.25:
        if valid_until <= now:
            # A quote whose validity ended in the back-dated month expired by its timer as soon as it was issued:
            # a decline synced after that is refused (the request is closed), so the demo leaves it undecided.
            # An acceptance made in time is not: it withdraws the expiry (`quote_expiry_withdrawn`).
            return None
        await demo.call(
            client,
            "intake",
            "POST",
            f"{url}/quote/decline",
            headers=decider,
            json={"reason": "the customer will not pay for the repair", "occurred_at": at(decided)},
        )
        return None
    accepted = await demo.call(
        client,
        "intake",
        "POST",
        f"{url}/quote/accept",
        headers=decider,
        json={"channel": "dealer" if dealer else "hotline", "occurred_at": at(decided)},
    )
    return decided if accepted else None


async def field_work(
    demo: Demo, client: httpx.AsyncClient, job: dict, request: dict, t: datetime, now: datetime, dealer: str | None
) -> None:
    """Accept, visit, complete, revisit, claim — as far as time has come. At the first visit the unit often
    needs a part: fitted from the van at once, or the visit fails (`parts_unavailable`) and a second one fits
    it once it has come to the van (`demo_parts`). Otherwise a visit fails now and then for another reason."""
    rng, job_url = demo.rng, f"/v1/jobs/{job['id']}"
    technician = job.get("technician_id")
    if not technician:
        candidates = demo.technicians.get(request["customer"]["region"])
        technician = rng.choice(candidates) if candidates else None
        if technician is None or not await demo.call(
            client,
            "dispatch",
            "POST",
            f"{job_url}/assign",
            json={"technician_id": technician, "occurred_at": at(t + timedelta(minutes=5))},
        ):
            return
        t += timedelta(minutes=5)

    async def step(action: str, minutes: float, **body) -> bool:
        nonlocal t
        t += timedelta(minutes=minutes)
        if t > now:
            return False  # the future: the job stays open in the backlog
        answer = await demo.call(client, "dispatch", "POST", f"{job_url}/{action}", json={**body, "occurred_at": at(t)})
        return answer is not None

    if not await step("accept", rng.expovariate(1 / 25)) or not await step("arrive", rng.expovariate(1 / 300) + 20):
        return
    swap_ids: list[str] = []
    need = None
    if "warranty" in demo.up and rng.random() < 0.45:
        need = await demo_parts.ask(demo, client, job["id"], technician, t + timedelta(minutes=10))
    work = rng.expovariate(1 / 70) + 25  # the part is asked for (or fitted) before the visit ends
    if need is not None and need.in_van:
        swap_id = await demo_parts.fit(demo, client, job, request, need, t + timedelta(minutes=20), now)
        swap_ids += [swap_id] if swap_id else []
    elif need is not None:
        if not await step("complete", work, fixed=False, resolution="part ordered", reason="parts_unavailable"):
            return
        in_van = await demo_parts.bring_to_van(demo, client, need, technician, t, now)
        if in_van is None:
            return  # still waiting for the part
        t = in_van
        if not await step("arrive", rng.uniform(60, 24 * 60)):
            return
        swap_id = await demo_parts.fit(demo, client, job, request, need, t + timedelta(minutes=20), now)
        swap_ids += [swap_id] if swap_id else []
    elif rng.random() < 0.12:
        reason = rng.choices(FAILED_VISIT_REASONS[1:], FAILED_VISIT_WEIGHTS[1:])[0]
        if not await step("complete", work, fixed=False, resolution="not fixed", reason=reason):
            return
        if not await step("arrive", rng.expovariate(1 / 900) + 60):
            return
    if not await step("complete", rng.expovariate(1 / 70) + 30, fixed=True, resolution="repaired"):
        return
    revisit_at = t + timedelta(hours=rng.uniform(20, 60))
    if revisit_at <= now and rng.random() < 0.8:
        score = rng.choices([s for s, _ in SATISFACTION], [w for _, w in SATISFACTION])[0]
        await demo.call(
            client,
            "dispatch",
            "POST",
            f"{job_url}/revisit",
            headers=demo.token("agent"),
            json={
                "satisfaction": score,
                "nps": min(10, max(0, score * 2 + rng.randrange(-1, 2))),
                "channel": "phone",
                "occurred_at": at(revisit_at),
            },
        )
    if dealer and "warranty" in demo.up and rng.random() < 0.7:
        await demo.call(
            client,
            "warranty",
            "POST",
            "/v1/claims",
            eventually=True,
            headers=demo.token("dealer", sub=dealer, dealer_id=dealer),
            ok=(201, 409, 422),
            json={"job_id": job["id"], "labour_minutes": rng.randrange(30, 240), "swap_ids": swap_ids},
        )


async def one_request(demo: Demo, client: httpx.AsyncClient, received: datetime, now: datetime) -> None:
    rng = demo.rng
    dealer = rng.choice(DEALERS) if rng.random() < 0.75 else None
    line = rng.choice(list(LINES))
    serial = f"SN-{line[:2].upper()}-{uuid.uuid4().hex[:8]}"
    if "warranty" in demo.up and rng.random() < 0.8:
        await demo.call(
            client,
            "warranty",
            "POST",
            "/v1/products",
            headers=demo.token("warranty_officer"),
            json={
                "serial": serial,
                "model": LINES[line],
                "product_line": line,
                "dealer_id": dealer,
                "sold_on": (received - timedelta(days=rng.randrange(30, 1000))).date().isoformat(),
            },
        )
    request = await demo.call(
        client,
        "intake",
        "POST",
        "/v1/service-requests",
        headers=demo.token("agent"),
        json={
            "dealer_id": dealer,
            "channel": "dealer" if dealer else rng.choice(["hotline", "web", "app"]),
            "customer": {
                "name": f"Customer {rng.randrange(10_000)}",
                "phone": f"+49 170 {rng.randrange(10**7):07d}",
                "region": rng.choice(REGIONS),
            },
            "product": {"serial": serial, "model": LINES[line], "product_line": line},
            "purchase_date": (received - timedelta(days=rng.randrange(30, 900))).date().isoformat(),
            "symptom": rng.choice(["does not start", "leaks water", "loud noise", "error E4", "stops after 10 min"]),
            "customer_tier": rng.choice(["standard", "standard", "farmer", "key_account"]),
            "urgent": rng.random() < 0.1,
            "occurred_at": at(received),
        },
    )
    if request is None:
        return
    url, agent, t = f"/v1/service-requests/{request['id']}", demo.token("agent"), received
    if rng.random() < 0.06:
        t += timedelta(minutes=rng.uniform(2, 20))
        await demo.call(
            client,
            "intake",
            "POST",
            f"{url}/escalate",
            headers=agent,
            json={"reason": "needs second-level support", "occurred_at": at(t)},
        )
    t += timedelta(minutes=rng.expovariate(1 / 12) + 1)
    if t > now:
        return
    if rng.random() < 0.03:
        await demo.call(
            client,
            "intake",
            "POST",
            f"{url}/cancel",
            headers=agent,
            json={"reason": "customer fixed it", "occurred_at": at(t)},
        )
        return
    mode = rng.choices(["phone", "onsite", "carry_in", "mail_in"], [22, 55, 15, 8])[0]
    if not await demo.call(
        client, "intake", "POST", f"{url}/triage", headers=agent, json={"mode": mode, "occurred_at": at(t)}
    ):
        return
    job = None
    if mode != "phone" and "warranty" in demo.up:
        settled = await triage_settled(demo, client, request["id"])
        if settled is None:
            return
        if settled["status"] == "awaiting_quote":
            accepted = await paid_service(demo, client, request, t, now, dealer)
            if accepted is None:
                return
            t = accepted
    if mode != "phone" and "dispatch" in demo.up:
        job = await wait_for_job(demo, client, request["id"])
        if job:
            await field_work(demo, client, job, request, t, now, dealer)
    if "complaints" in demo.up and rng.random() < 0.05:
        complained = t + timedelta(hours=rng.uniform(1, 72))
        if complained <= now:
            await demo.call(
                client,
                "complaints",
                "POST",
                "/v1/complaints",
                headers=agent,
                json={
                    "request_id": request["id"],
                    "job_id": job["id"] if job else None,
                    "channel": "hotline",
                    "category": rng.choice(["delay", "attitude", "quality", "fee"]),
                    "severity": rng.choice(["general", "general", "serious"]),
                    "description": "The customer is unhappy",
                    "occurred_at": at(complained),
                },
            )


async def run(args: argparse.Namespace) -> int:
    urls = {
        name: os.environ.get(f"{name.upper()}_URL", f"http://127.0.0.1:{port}").rstrip("/")
        for name, port in SERVICES.items()
    }
    settings = ServiceSettings()
    demo = Demo(urls, settings.auth_secret, random.Random(args.seed))
    days = min(args.days, settings.max_backdate_days - 1)
    now = datetime.now(UTC)
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    # Idle connections are dropped after 2 s, before the services' (uvicorn's) 5 s keep-alive closes them: a call
    # sent on a connection the server is closing that moment fails without an answer (RemoteProtocolError).
    limits = httpx.Limits(keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        print("Servicetrail demo: checking the services ...")
        await check_services(demo, client)
        if "intake" not in demo.up:
            print("intake is not up: there is nothing to fill (start everything with `make run`).")
            return 0
        await reference_data(demo, client, start - timedelta(days=1))
        arrivals = sorted(
            start + timedelta(days=d, hours=demo.rng.uniform(7, 19))
            for d in range(days + 1)
            for _ in range(demo.rng.randrange(args.per_day // 2, args.per_day * 3 // 2 + 1))
        )
        arrivals = [a for a in arrivals if a < now]
        print(f"opening {len(arrivals)} requests over {days} days ({args.concurrency} at a time) ...")
        gate = asyncio.Semaphore(args.concurrency)

        async def bounded(received: datetime) -> None:
            async with gate:
                await one_request(demo, client, received, now)

        await asyncio.gather(*(bounded(a) for a in arrivals))
    print("\ndone:")
    for what, count in sorted(demo.counts.items()):
        print(f"  {count:>6}  {what}" + (f"   ({demo.why[what]})" if what in demo.why else ""))
    if "analytics" in demo.up:
        print(f"\nDashboard: {urls['analytics']}/dashboard#token={demo.admin['Authorization'].split()[1]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=12, help="requests per day on average")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--concurrency", type=int, default=6)
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
