"""The pure rules of intake's webhooks: which types a subscription may name and receives, whose case an event
is, when a failed delivery is tried again, when a subscription is switched off, where a webhook may go, and
how deliveries are signed."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.intake.webhooks.application import new_secret
from services.intake.webhooks.domain import (
    WebhookStatus,
    WebhookSubscription,
    case_key,
    case_refs,
    check_types,
    next_attempt_after,
    parse_schedule,
    should_disable,
    wants,
)
from services.intake.webhooks.sender import signed_headers
from services.intake.webhooks.url_policy import UrlPolicy, check_addresses, check_url, refusal
from shared.domain import InvalidTransition, RuleViolation

KNOWN = ["job.created", "job.completed", "service_request.received", "complaint.opened"]
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_types_are_known_event_types_or_prefix_patterns_that_match_one():
    assert check_types(["job.*", "service_request.received", "job.*"], KNOWN) == ["job.*", "service_request.received"]
    assert check_types(["*"], KNOWN) == ["*"]


@pytest.mark.parametrize("types", [["job.exploded"], ["warranty.*"], ["job"], [], ["job.*", "nothing.*"]])
def test_an_unknown_type_or_a_pattern_matching_nothing_is_refused_naming_types(types):
    with pytest.raises(RuleViolation) as refused:
        check_types(types, KNOWN)
    assert refused.value.field == "types"


def test_a_subscription_wants_the_types_its_patterns_match_and_no_others():
    assert wants(["job.*"], "job.completed")
    assert not wants(["job.*"], "jobs.created")
    assert not wants(["job.created"], "job.completed")
    assert wants(["*"], "complaint.opened")


def test_an_event_names_its_request_its_other_case_ids_and_a_dealer_if_it_says():
    refs = case_refs({"complaint_id": "C1", "job_id": "J1", "request_id": None, "dealer_id": None})
    assert refs.request_id is None and refs.dealer_id is None
    assert refs.case_ids == ("job:J1", "complaint:C1")
    assert case_key(refs, "R1", "complaints", "C1") == "request:R1"
    assert case_key(refs, None, "complaints", "C1") == "job:J1"
    assert case_key(case_refs({"serial": "S"}), None, "warranty", "S") == "warranty:S"


def test_a_failed_delivery_is_retried_later_and_later_then_given_up():
    schedule = parse_schedule("5,300,1800")
    assert next_attempt_after(1, T0, schedule) == T0 + timedelta(seconds=5)
    assert next_attempt_after(2, T0, schedule) == T0 + timedelta(minutes=5)
    assert next_attempt_after(3, T0, schedule) == T0 + timedelta(minutes=30)
    assert next_attempt_after(4, T0, schedule) is None


def test_the_default_schedule_retries_for_about_a_day():
    from services.intake.webhooks.domain import DEFAULT_RETRY_SCHEDULE

    total = sum(DEFAULT_RETRY_SCHEDULE)
    assert timedelta(hours=12) < timedelta(seconds=total) < timedelta(hours=30)
    assert list(DEFAULT_RETRY_SCHEDULE) == sorted(DEFAULT_RETRY_SCHEDULE)


@pytest.mark.parametrize("text", ["", "5,-1", "0", "x"])
def test_a_retry_schedule_is_positive_seconds(text):
    with pytest.raises(ValueError):
        parse_schedule(text)


def test_a_subscription_failing_for_three_days_is_switched_off_and_not_before():
    three_days = timedelta(days=3)
    assert not should_disable(None, T0, three_days)
    assert not should_disable(T0, T0 + three_days - timedelta(seconds=1), three_days)
    assert should_disable(T0, T0 + three_days, three_days)


def test_a_subscription_is_deleted_or_disabled_once_and_a_disabled_one_cannot_rotate():
    hook = WebhookSubscription.subscribe("W1", dealer_id="D1", url="https://x", types=["*"], description=None, at=T0)
    assert hook.status == WebhookStatus.active
    assert hook.disable(T0, "down", T0 + timedelta(days=3))
    assert not hook.disable(T0, "down", T0 + timedelta(days=4))
    assert [p.data.event_type for p in hook.take_pending()] == ["webhook.subscribed", "webhook.disabled"]
    with pytest.raises(InvalidTransition):
        hook.rotate_secret(T0, T0 + timedelta(days=4))
    hook.delete(T0 + timedelta(days=5))
    with pytest.raises(InvalidTransition):
        hook.delete(T0 + timedelta(days=5))


# --- where a webhook may go -----------------------------------------------------------------------------

STRICT = UrlPolicy.of("")


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "ftp://example.com/",
        "https:///nohost",
        "https://u:p@example.com/",
        "hook",
        "https://bücher.example/in",
    ],
)
def test_only_plain_https_urls_are_accepted(url):
    with pytest.raises(RuleViolation) as refused:
        check_url(url, STRICT)
    assert refused.value.field == "url"


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "100.64.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:a00:1::",  # 6to4 of 10.0.0.1
    ],
)
def test_private_loopback_link_local_multicast_reserved_and_mapped_addresses_are_refused(address):
    assert refusal(ipaddress.ip_address(address)) is not None
    target = check_url("https://hooks.example.com/in", STRICT)
    with pytest.raises(RuleViolation) as refused:
        check_addresses(target, [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address(address)], STRICT)
    assert refused.value.field == "url"


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_are_accepted(address):
    assert refusal(ipaddress.ip_address(address)) is None


def test_an_allowed_host_may_be_private_and_plain_http_only_when_the_setting_says():
    lenient = UrlPolicy.of("127.0.0.1, Receiver.Local", allow_http_for_allowed_hosts=True)
    target = check_url("http://receiver.local:8080/in?x=1", lenient)
    assert (target.host, target.port, target.path) == ("receiver.local", 8080, "/in?x=1")
    assert check_addresses(target, [ipaddress.ip_address("127.0.0.1")], lenient)
    with pytest.raises(RuleViolation):
        check_url("http://other.example/in", lenient)
    with pytest.raises(RuleViolation):
        check_url("http://127.0.0.1/in", UrlPolicy.of("127.0.0.1"))


# --- signatures -----------------------------------------------------------------------------------------


def test_a_delivery_is_signed_per_standard_webhooks_with_every_live_secret():
    old, new = new_secret(), new_secret()
    body = '{"id":"E1","data":{}}'
    headers = signed_headers([new, old], "E1", datetime.now(UTC), body)
    assert headers["webhook-id"] == "E1"
    assert headers["webhook-signature"].count("v1,") == 2
    assert Webhook(old).verify(body, headers) == {"id": "E1", "data": {}}
    assert Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body.replace("E1", "E2"), headers)
