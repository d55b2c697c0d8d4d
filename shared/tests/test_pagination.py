"""Cursors are decoded within bounds: anything a client forges is a 400, never a query that overflows."""

import base64
import json

import pytest

from shared.http.pagination import decode_cursor, encode_cursor
from shared.http.problems import Problem


def forged(after) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


@pytest.mark.parametrize("position", [0, 2**63 - 1, "P1|2026-01-01T00:00:00Z|x", ["2026-01-01T00:00:00+00:00", 3]])
def test_a_cursor_handed_out_names_its_position(position):
    assert decode_cursor(encode_cursor(position)) == position


@pytest.mark.parametrize(
    "after", [2**63, -(2**63) - 1, 10**400, True, 1.5, None, {"a": 1}, "x" * 201, [1, 2, 3, 4, 5], [[1]], [10**30, 1]]
)
def test_a_forged_cursor_out_of_bounds_is_a_400_naming_the_cursor(after):
    with pytest.raises(Problem) as refused:
        decode_cursor(forged(after))
    assert refused.value.status == 400 and refused.value.extra["errors"][0]["field"] == "cursor"
