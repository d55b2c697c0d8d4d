"""Products sold, as one record or as a file of thousands (CSV with a header line, or JSON lines): every row
validated on its own and its errors reported with the row's line number in the file. Pure: parsing and the
checks a row can make by itself; whether a serial is registered already is the application's to check.

Line numbers are those of the file as a text editor shows them (CSV: the header is line 1; a record whose
quoted field spans lines is reported at its first line). Blank lines are skipped."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.warranty.commands import RegisterProduct, RowError

# Serials name a stream and a URL path segment (`/v1/units/{serial}/history`): no whitespace, '/' or ':'.
SERIAL_PATTERN = r"^[^\s/:\x00-\x1f\x7f]{1,80}$"
MAX_ROWS = 50_000
MAX_REPORTED_ERRORS = 1_000
COLUMNS = ("serial", "model", "product_line", "sold_on", "dealer_id")


class ImportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


class ProductFields(BaseModel):
    """A unit sold: the same fields for one registration and for each row of an import."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    serial: str = Field(pattern=SERIAL_PATTERN, description="1-80 characters; no whitespace, '/' or ':'")
    model: str = Field(min_length=1, max_length=120)
    product_line: str = Field(min_length=1, max_length=72)
    sold_on: date = Field(description="The sale date; not in the future")
    dealer_id: str | None = Field(
        None,
        min_length=1,
        max_length=80,
        description="The selling dealer (null: a direct sale); for dealer tokens, its own",
    )


class ImportRejected(Exception):
    """The file as a whole cannot be read (format, header, size); `errors` say where."""

    def __init__(self, detail: str, errors: list[RowError], *, too_large: bool = False) -> None:
        super().__init__(detail)
        self.detail, self.errors, self.too_large = detail, errors, too_large


class RowChecker:
    """Validates rows one by one: fields, the sale date, the dealer scope, and serials repeated in the file."""

    def __init__(self, today: date, dealer_scope: str | None) -> None:
        self.today, self.dealer_scope = today, dealer_scope
        self.first_line: dict[str, int] = {}
        self.rows: list[tuple[int, RegisterProduct]] = []
        self.errors: list[RowError] = []

    def check(self, line: int, raw: object) -> None:
        if len(self.rows) + len(self.errors) >= MAX_ROWS:
            raise ImportRejected(
                f"an import holds at most {MAX_ROWS} rows", [RowError(line, "body", "too many rows")], too_large=True
            )
        if not isinstance(raw, dict):
            self.errors.append(RowError(line, "row", "a row must be a JSON object"))
            return
        serial = raw.get("serial") if isinstance(raw.get("serial"), str) else None
        try:
            fields = ProductFields.model_validate(raw)
        except ValidationError as exc:
            for error in exc.errors():
                name = ".".join(str(p) for p in error["loc"]) or "row"
                self.errors.append(RowError(line, name, error["msg"], serial))
            return
        problems = []
        if fields.sold_on > self.today:
            problems.append(RowError(line, "sold_on", f"{fields.sold_on.isoformat()} is in the future", fields.serial))
        dealer_id = fields.dealer_id
        if self.dealer_scope is not None:
            if dealer_id not in (None, self.dealer_scope):
                problems.append(RowError(line, "dealer_id", "differs from the token's dealer_id", fields.serial))
            dealer_id = self.dealer_scope
        if fields.serial in self.first_line:
            problems.append(
                RowError(line, "serial", f"serial repeated from line {self.first_line[fields.serial]}", fields.serial)
            )
        else:
            self.first_line[fields.serial] = line
        if problems:
            self.errors.extend(problems)
            return
        self.rows.append(
            (line, RegisterProduct(fields.serial, fields.model, fields.product_line, fields.sold_on, dealer_id))
        )


def parse(body: bytes, fmt: ImportFormat, *, today: date, dealer_scope: str | None) -> RowChecker:
    """Read and check every row of an import file."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRejected("the file is not UTF-8 text", [RowError(1, "body", str(exc))]) from exc
    checker = RowChecker(today, dealer_scope)
    if fmt == ImportFormat.csv:
        _read_csv(text, checker)
    else:
        _read_json_lines(text, checker)
    if not checker.rows and not checker.errors:
        raise ImportRejected("the file holds no rows", [RowError(1, "body", "no rows")])
    return checker


def _read_csv(text: str, checker: RowChecker) -> None:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    previous_end = 0
    try:
        for record in reader:
            line, previous_end = previous_end + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in record]
                _check_header(header, line)
                continue
            if len(record) != len(header):
                checker.errors.append(RowError(line, "row", f"{len(record)} fields where the header has {len(header)}"))
                continue
            checker.check(
                line,
                {name: value for name, value in zip(header, record) if not (name == "dealer_id" and not value.strip())},
            )
    except csv.Error as exc:
        raise ImportRejected(
            f"the CSV cannot be read after line {previous_end}: {exc}", [RowError(previous_end + 1, "row", str(exc))]
        ) from exc


def _check_header(header: list[str], line: int) -> None:
    missing = [c for c in COLUMNS if c not in header and c != "dealer_id"]
    unknown = [c for c in header if c not in COLUMNS]
    repeated = sorted({c for c in header if header.count(c) > 1})
    errors = [RowError(line, "header", f"missing column {c}") for c in missing]
    errors += [RowError(line, "header", f"unknown column {c!r}") for c in unknown]
    errors += [RowError(line, "header", f"column {c} appears twice") for c in repeated]
    if errors:
        raise ImportRejected(f"the CSV header must name the columns {', '.join(COLUMNS)}", errors)


def _read_json_lines(text: str, checker: RowChecker) -> None:
    for line, content in enumerate(text.split("\n"), start=1):
        content = content.strip()
        if not content:
            continue
        try:
            raw = json.loads(content)
        except ValueError as exc:
            checker.errors.append(RowError(line, "row", f"not valid JSON: {exc}"))
            continue
        checker.check(line, raw)
