"""The fuzz stage in make test: schemathesis generates a few valid and invalid requests per operation of every
service's OpenAPI document and sends each with an admin token and a dealer token to the real services."""

import pytest

from deploy.chaos.fuzz import SERVER_ERROR, UNDOCUMENTED_STATUS, FuzzReport, fuzz
from deploy.chaos.system import System

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

EXAMPLES_PER_OPERATION = 4


@pytest.fixture(scope="module")
def fuzzed() -> FuzzReport:
    with System() as system:
        report = fuzz(system, EXAMPLES_PER_OPERATION)
    print(report.summary())
    return report


def listing(failures) -> str:
    return "\n".join(str(f) for f in failures[:40]) + (f"\n... {len(failures)} in all" if len(failures) > 40 else "")


def test_the_fuzzer_reaches_every_service_and_operation(fuzzed):
    assert set(fuzzed.operations) == {"intake", "dispatch", "warranty", "complaints", "analytics"}
    assert sum(fuzzed.operations.values()) >= 70
    assert sum(fuzzed.requests.values()) >= 2 * sum(fuzzed.operations.values())


def test_no_generated_request_gets_a_server_error_or_a_dropped_connection(fuzzed):
    failures = fuzzed.of(SERVER_ERROR)
    assert not failures, listing(failures)


def test_every_status_a_service_answers_is_documented_in_its_openapi(fuzzed):
    failures = fuzzed.of(UNDOCUMENTED_STATUS)
    assert not failures, listing(failures)


def test_every_answer_matches_its_documented_schema(fuzzed):
    failures = fuzzed.of(other_than=(SERVER_ERROR, UNDOCUMENTED_STATUS))
    assert not failures, listing(failures)
