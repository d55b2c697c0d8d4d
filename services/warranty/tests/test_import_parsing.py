"""Reading an import file on its own: every row checked, every error with its line."""

from datetime import date

import pytest

from services.warranty.bulk_import import ImportFormat, ImportRejected, parse

TODAY = date(2026, 5, 4)
HEADER = "serial,model,product_line,sold_on,dealer_id\n"


def errors_of(checker) -> list[tuple[int, str]]:
    return [(e.line, e.field) for e in checker.errors]


def test_good_csv_rows_become_registrations_with_their_lines():
    body = (HEADER + "SN-1,T-100,tractor,2025-03-01,D1\n\nSN-2,W-9,washer,2026-05-04,\n").encode()
    checker = parse(body, ImportFormat.csv, today=TODAY, dealer_scope=None)
    assert checker.errors == []
    assert [(line, row.serial, row.dealer_id) for line, row in checker.rows] == [(2, "SN-1", "D1"), (4, "SN-2", None)]


def test_every_bad_csv_row_is_reported_with_its_line_and_field():
    body = (
        HEADER
        + "SN-1,T-100,tractor,2025-03-01,D1\n"  # line 2: fine
        + "SN 2,T-100,tractor,2025-03-01,D1\n"  # line 3: whitespace in the serial
        + "SN-3,T-100,tractor,2025-02-30,D1\n"  # line 4: no such date
        + "SN-4,T-100,tractor,2026-05-05,D1\n"  # line 5: sold tomorrow
        + "SN-1,T-100,tractor,2025-03-01,D1\n"  # line 6: repeats line 2
        + "SN-6,,tractor,2025-03-01,D1\n"  # line 7: no model
        + "SN-7,T-100,tractor\n"
    ).encode()  # line 8: too few fields
    checker = parse(body, ImportFormat.csv, today=TODAY, dealer_scope=None)
    assert errors_of(checker) == [
        (3, "serial"),
        (4, "sold_on"),
        (5, "sold_on"),
        (6, "serial"),
        (7, "model"),
        (8, "row"),
    ]
    assert checker.errors[2].reason == "2026-05-05 is in the future"
    assert checker.errors[3].reason == "serial repeated from line 2"
    assert [line for line, _ in checker.rows] == [2]


def test_a_quoted_field_spanning_lines_is_reported_at_its_first_line():
    body = (HEADER + 'SN-1,"T-100\nspecial",tractor,2025-03-01,D1\nSN-2,T-1,tractor,someday,D1\n').encode()
    checker = parse(body, ImportFormat.csv, today=TODAY, dealer_scope=None)
    assert [line for line, _ in checker.rows] == [2]
    assert errors_of(checker) == [(4, "sold_on")]


@pytest.mark.parametrize(
    "header, reason",
    [
        ("serial,model,sold_on,dealer_id\n", "missing column product_line"),
        ("serial,model,product_line,sold_on,colour\n", "unknown column 'colour'"),
    ],
)
def test_a_wrong_csv_header_rejects_the_file_at_line_1(header, reason):
    with pytest.raises(ImportRejected) as rejected:
        parse((header + "SN-1,T,tractor,2025-03-01,D1\n").encode(), ImportFormat.csv, today=TODAY, dealer_scope=None)
    assert [(e.line, e.field, e.reason) for e in rejected.value.errors] == [(1, "header", reason)]


def test_json_lines_rows_are_checked_the_same_way():
    body = b"\n".join(
        [
            b'{"serial": "SN-1", "model": "T", "product_line": "tractor", "sold_on": "2025-03-01", "dealer_id": "D1"}',
            b'{"serial": "SN-2", "model": "T", "product_line": "tractor", "sold_on": "2025-03-01", "colour": "red"}',
            b"not json",
            b"[1, 2]",
            b"",
            b'{"serial": "SN-5", "model": "T", "product_line": "tractor"}',
        ]
    )
    checker = parse(body, ImportFormat.jsonl, today=TODAY, dealer_scope=None)
    assert errors_of(checker) == [(2, "colour"), (3, "row"), (4, "row"), (6, "sold_on")]
    assert [line for line, _ in checker.rows] == [1]


def test_a_dealer_imports_its_own_sales_only():
    body = HEADER + "SN-1,T,tractor,2025-03-01,D7\nSN-2,T,tractor,2025-03-01,\nSN-3,T,tractor,2025-03-01,D8\n"
    checker = parse(body.encode(), ImportFormat.csv, today=TODAY, dealer_scope="D7")
    assert [(row.serial, row.dealer_id) for _, row in checker.rows] == [("SN-1", "D7"), ("SN-2", "D7")]
    assert [(e.line, e.field, e.reason) for e in checker.errors] == [
        (4, "dealer_id", "differs from the token's dealer_id")
    ]


def test_an_empty_file_or_one_that_is_not_utf8_is_rejected():
    with pytest.raises(ImportRejected, match="no rows"):
        parse(HEADER.encode(), ImportFormat.csv, today=TODAY, dealer_scope=None)
    with pytest.raises(ImportRejected, match="not UTF-8"):
        parse(b"\xff\xfe\x00", ImportFormat.jsonl, today=TODAY, dealer_scope=None)
