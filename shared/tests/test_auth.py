"""Tokens: roles and dealer scope are read from a verified JWT; anything else is refused."""

from datetime import timedelta

import jwt
import pytest

from shared.auth import InvalidToken, Role, TokenVerifier, mint_token
from shared.auth.__main__ import main as cli

SECRET = "test-secret-that-is-long-enough-32b"


def test_a_minted_token_verifies_to_its_subject_roles_and_dealer():
    token = mint_token(SECRET, subject="dealer:D1", roles=["dealer"], dealer_id="D1")
    principal = TokenVerifier(SECRET).verify(token)
    assert principal.subject == "dealer:D1"
    assert principal.roles == {Role.dealer}
    assert principal.is_dealer and principal.dealer_id == "D1"
    assert principal.can_see_dealer("D1") and not principal.can_see_dealer("D2")


def test_a_dealer_token_with_another_role_is_still_confined_to_its_dealer():
    token = mint_token(SECRET, subject="T9", roles=["dealer", "technician"], dealer_id="D1")
    principal = TokenVerifier(SECRET).verify(token)
    assert principal.is_dealer and not principal.can_see_dealer("D2")


def test_admin_passes_every_role_check_and_staff_see_every_dealer():
    admin = TokenVerifier(SECRET).verify(mint_token(SECRET, subject="root", roles=["admin"]))
    assert admin.has_any(Role.warranty_officer)
    assert admin.can_see_dealer("anyone")


@pytest.mark.parametrize(
    "token, reason",
    [
        (mint_token("another-secret-another-secret-32b", subject="x", roles=["admin"]), "not valid"),
        (mint_token(SECRET, subject="x", roles=["admin"], ttl=timedelta(seconds=-5)), "expired"),
        (jwt.encode({"sub": "x", "roles": ["wizard"], "exp": 4102444800}, SECRET, algorithm="HS256"), "unknown role"),
        (jwt.encode({"sub": "x", "roles": ["dealer"], "exp": 4102444800}, SECRET, algorithm="HS256"), "dealer_id"),
        (jwt.encode({"sub": "x", "roles": ["admin"]}, SECRET, algorithm="HS256"), "exp"),
        (jwt.encode({"sub": "x", "roles": ["admin"], "exp": 4102444800}, SECRET, algorithm="HS512"), "not valid"),
        ("not-a-jwt", "not valid"),
    ],
)
def test_a_forged_expired_or_incomplete_token_is_refused(token, reason):
    with pytest.raises(InvalidToken, match=reason):
        TokenVerifier(SECRET).verify(token)


def test_the_command_line_tool_mints_a_dealer_token(capsys, monkeypatch):
    monkeypatch.setenv("AUTH_SECRET", SECRET)
    assert cli(["mint", "--roles", "dealer", "--dealer-id", "D7"]) == 0
    principal = TokenVerifier(SECRET).verify(capsys.readouterr().out.strip())
    assert principal.dealer_id == "D7" and principal.roles == {Role.dealer}


def test_the_command_line_tool_refuses_a_dealer_token_without_a_dealer(capsys):
    with pytest.raises(SystemExit):
        cli(["mint", "--roles", "dealer"])


@pytest.mark.parametrize(
    "claims",
    [
        {"roles": 7},
        {"roles": None},
        {"roles": True},
        {"roles": [1, 2]},
        {"roles": {"admin": 1}},
        {"roles": ["dealer"], "dealer_id": ["D1", "D2"]},
        {"roles": ["dealer"], "dealer_id": 5},
        {"roles": ["admin"], "dealer_id": {"id": "D1"}},
        {"roles": ["admin"], "dealer_id": ""},
    ],
)
def test_a_signed_token_with_claims_of_the_wrong_type_is_invalid(claims):
    token = jwt.encode({"sub": "x", "exp": 4102444800, **claims}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        TokenVerifier(SECRET).verify(token)
