"""The fuzz stage: schemathesis over every service's OpenAPI document, each generated request sent with an admin
token and with a dealer token, valid inputs and invalid ones. Checks: no 5xx (and no dropped connection), no
status the operation does not document, no response that breaks its documented schema.

`python -m deploy.chaos.fuzz [--examples N]` (make fuzz) starts its own system; the test in make test runs a
few examples per operation. Failures are collected (not shrunk) and printed as operation, input and status."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.core.failures import FailureGroup
from schemathesis.transport.prepare import get_exclude_headers

from deploy.chaos.system import System

SERVER_ERROR, UNDOCUMENTED_STATUS = "Server error", "Undocumented status code"
CHECKS = [
    not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.response_schema_conformance,
]


@dataclass(frozen=True)
class FuzzFailure:
    service: str
    operation: str
    token: str
    check: str
    status: int | None
    request: str

    def __str__(self) -> str:
        return f"{self.service} {self.operation} [{self.token}] {self.check} -> {self.status}: {self.request}"


@dataclass
class FuzzReport:
    operations: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[FuzzFailure] = field(default_factory=list)
    seconds: float = 0.0

    def of(self, *checks: str, other_than: tuple[str, ...] = ()) -> list[FuzzFailure]:
        """Failures of the named checks (or of any check but `other_than`); a dropped connection counts as a
        server error."""
        return [
            f
            for f in self.failures
            if (
                f.check in checks
                or (SERVER_ERROR in checks and f.check.startswith("no response"))
                or (other_than and f.check not in other_than and not f.check.startswith("no response"))
            )
        ]

    def summary(self) -> str:
        lines = [f"{'service':<12}{'operations':>11}{'requests':>10}{'failures':>10}"]
        by_service = Counter(f.service for f in self.failures)
        for service in self.operations:
            lines.append(
                f"{service:<12}{self.operations[service]:>11}{self.requests[service]:>10}{by_service[service]:>10}"
            )
        server_errors = sum(n for status, n in self.statuses.items() if status >= 500)
        lines.append(
            f"total: {sum(self.operations.values())} operations, {sum(self.requests.values())} requests, "
            f"{server_errors} server errors, {len(self.failures)} failures in {self.seconds:.0f}s; "
            f"statuses {dict(sorted(self.statuses.items()))}"
        )
        distinct = Counter((f.service, f.operation, f.check, f.status) for f in self.failures)
        for (service, operation, check, status), n in distinct.most_common():
            example = next(
                f
                for f in self.failures
                if (f.service, f.operation, f.check, f.status) == (service, operation, check, status)
            )
            lines.append(
                f"  {n:>4} × {service} {operation} {check} -> {status}   e.g. [{example.token}] {example.request}"
            )
        return "\n".join(lines)


def _describe(case) -> str:
    """Path, query and body of the case, and whether schemathesis left the Authorization header out (a negative
    case testing the security scheme)."""
    headers = {k: v for k, v in dict(case.headers or {}).items() if k.lower() != "authorization"}
    parts = {"path": case.path_parameters, "query": case.query, "headers": headers}
    if not isinstance(case.body, NotSet):
        parts["body"] = case.body
    try:
        if "Authorization" in get_exclude_headers(case):
            parts["auth"] = "left out"
    except Exception:  # internal helper of schemathesis: only a nicer message depends on it
        pass
    text = json.dumps({k: v for k, v in parts.items() if v not in (None, {}, [])}, default=repr, ensure_ascii=True)
    return text if len(text) < 300 else text[:300] + "..."


def _failed_checks(exc: BaseException) -> list[str]:
    """The titles of the failed checks schemathesis raised (a group of failures, or one)."""
    inner = getattr(exc, "exceptions", None) or [exc]
    return sorted({(getattr(e, "title", None) or type(e).__name__).split("\n")[0][:80] for e in inner})


def fuzz_service(
    system: System,
    service: str,
    examples: int,
    report: FuzzReport,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
) -> None:
    url = system.services[service].url
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    tokens = {"admin": system.token("admin"), "dealer D1": system.token("dealer", dealer_id="D1")}
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        report.operations[service] += 1
        for mode in modes:

            @hypothesis.settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                for token_name, token in tokens.items():
                    report.requests[service] += 1
                    try:
                        response = case.call(
                            base_url=url, session=session, timeout=15, headers={"Authorization": f"Bearer {token}"}
                        )
                    except requests.RequestException as exc:
                        report.failures.append(
                            FuzzFailure(
                                service, label, token_name, f"no response ({type(exc).__name__})", None, _describe(case)
                            )
                        )
                        continue
                    report.statuses[response.status_code] += 1
                    try:
                        case.validate_response(response, checks=CHECKS)
                    except (Exception, FailureGroup) as exc:  # schemathesis raises its failures
                        for check in _failed_checks(exc):
                            report.failures.append(
                                FuzzFailure(service, label, token_name, check, response.status_code, _describe(case))
                            )

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing to get wrong: no parameters and no body (negative mode of GET /healthz)


def fuzz(system: System, examples: int, services: list[str] | None = None) -> FuzzReport:
    report = FuzzReport()
    started = time.monotonic()
    for service in services or list(system.services):
        fuzz_service(system, service, examples, report)
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.chaos.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=25, help="generated cases per operation and mode")
    parser.add_argument("--services", default="", help="comma separated (default: all five)")
    args = parser.parse_args(argv)
    with System() as system:
        report = fuzz(system, args.examples, [s for s in args.services.split(",") if s] or None)
    print(report.summary())
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
