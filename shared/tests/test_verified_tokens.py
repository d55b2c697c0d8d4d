"""A token verified once is not verified again until it expires; past its `exp` it is refused as before, and a
token that differs in any byte (a forged signature) is verified on its own."""

import time
from datetime import timedelta

import pytest

from shared.auth import InvalidToken, Role, TokenVerifier, mint_token
from shared.http.security import VerifiedTokens
from shared.tests.conftest import SECRET, CountingVerifier


def test_a_token_seen_again_before_it_expires_is_the_same_principal_without_a_second_verification():
    verifier = CountingVerifier(SECRET)
    tokens = VerifiedTokens(verifier)
    token = mint_token(SECRET, subject="agent-1", roles=["agent"])
    first, second = tokens.verify(token), tokens.verify(token)
    assert first == second and first.subject == "agent-1" and first.roles == {Role.agent}
    assert verifier.verified == 1


def test_a_cached_token_is_refused_once_its_expiry_has_passed():
    tokens = VerifiedTokens(TokenVerifier(SECRET))
    token = mint_token(SECRET, subject="agent-1", roles=["agent"], ttl=timedelta(seconds=1))
    assert tokens.verify(token).subject == "agent-1"
    deadline = time.monotonic() + 10
    with pytest.raises(InvalidToken, match="expired"):
        while time.monotonic() < deadline:  # refused as soon as the second of its exp has passed
            tokens.verify(token)
            time.sleep(0.05)


def test_a_forged_signature_on_a_cached_payload_is_refused():
    tokens = VerifiedTokens(TokenVerifier(SECRET))
    token = mint_token(SECRET, subject="agent-1", roles=["agent"])
    tokens.verify(token)
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(InvalidToken):
        tokens.verify(forged)


def test_the_cache_starts_over_when_full_and_keeps_answering():
    verifier = CountingVerifier(SECRET)
    tokens = VerifiedTokens(verifier, size=2)
    minted = [mint_token(SECRET, subject=f"agent-{i}", roles=["agent"]) for i in range(3)]
    assert [tokens.verify(t).subject for t in minted + minted] == [f"agent-{i}" for i in range(3)] * 2
    assert 3 < verifier.verified <= 6
