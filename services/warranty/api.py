"""warranty's HTTP entry points for what was sold and how it is covered: products (one by one and in bulk),
warranty policies, and coverage. Each route turns its input into a command or a query and calls it once."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from services.warranty.bulk_import import ImportFormat, ImportRejected, ProductFields, parse
from services.warranty.commands import ImportProducts, RegisterProduct, SetWarrantyPolicy
from services.warranty.queries import WarrantyQueries
from services.warranty.views import CoverageView, ImportReport, PolicyView, ProductView
from shared.auth import Actor, Role
from shared.http.commands import Command, CommandCall, StrictBody, create_once
from shared.http.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from shared.http.problems import Problem
from shared.http.security import CurrentActor, Permission, dealer_for

router = APIRouter(tags=["products and coverage"])

V = TypeVar("V", bound=BaseModel)

STAFF_READERS = (Role.agent, Role.dispatcher, Role.analyst, Role.warranty_officer, Role.complaints_officer)
MAX_IMPORT_BYTES = 20 * 1024 * 1024
IMPORT_TYPES = {
    "text/csv": ImportFormat.csv,
    "application/csv": ImportFormat.csv,
    "application/x-ndjson": ImportFormat.jsonl,
    "application/jsonl": ImportFormat.jsonl,
    "application/x-jsonlines": ImportFormat.jsonl,
    "application/json-lines": ImportFormat.jsonl,
}


def _queries(request: Request) -> WarrantyQueries:
    return request.app.state.warranty_queries


Queries = Annotated[WarrantyQueries, Depends(_queries)]
Serial = Annotated[str, Path(min_length=1, max_length=80, description="The unit's serial")]
Id = Annotated[str, Field(min_length=1, max_length=80)]  # an id in a body
PathId = Annotated[str, Path(min_length=1, max_length=80)]  # an id in the path


def page(view: type[V], items: list[dict[str, Any]], after: Any) -> Page[V]:
    """A page of views (validated) and the cursor of the next page (None on the last)."""
    return Page[view](  # type: ignore[valid-type]
        items=[view.model_validate(item) for item in items],
        next_cursor=encode_cursor(after) if after is not None else None,
    )


def invalid_cursor() -> Problem:
    """The 400 for a cursor this API did not hand out: forged, of another list, or not of the list's key."""
    return Problem(
        400,
        "The cursor is not one this API handed out.",
        slug="invalid-cursor",
        errors=[{"field": "cursor", "reason": "not a valid cursor"}],
    )


def cursor_value(cursor: str | None, kind: type) -> Any:
    """The key a list's cursor names, checked to be of `kind` (400 otherwise)."""
    after = decode_cursor(cursor)
    if after is not None and not isinstance(after, kind):
        raise invalid_cursor()
    return after


# shared.http.openapi documents the statuses that follow from a route's shape (404 for a path parameter); a
# route whose 404 comes from an id in its query or body (a serial, a job) documents it itself.
UNKNOWN_REFERENCE: dict[int | str, dict] = {
    404: {
        "description": "The serial or job the input names is not known (or not one this caller may see)",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}


def own_dealer(actor: Actor, requested: str | None, action: str) -> str | None:
    """A dealer acts for itself: a different dealer_id in the input is refused (403)."""
    return dealer_for(actor, requested, action=f"{action} for itself")


class ProductBody(ProductFields, StrictBody):
    """A unit sold."""


class PolicyBody(StrictBody):
    product_line: str = Field(min_length=1, max_length=72)
    months: int = Field(ge=1, le=240, description="Months of coverage of the whole unit")
    part_months: dict[Annotated[str, Field(min_length=1, max_length=80)], Annotated[int, Field(ge=1, le=240)]] = Field(
        default_factory=dict, description='Months of coverage of named part categories, e.g. {"compressor": 60}'
    )
    excluded_categories: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(
        default_factory=list, max_length=200, description="Wear-part categories never covered"
    )
    effective_from: date | None = Field(None, description="For units sold on or after this date (default: all)")


@router.post(
    "/v1/products",
    response_model=ProductView,
    status_code=201,
)
async def register_product(
    body: ProductBody, call: Annotated[CommandCall, Command(Role.warranty_officer, Role.dealer, idempotent=True)]
) -> Response:
    """Register a unit sold. A dealer registers its own sales (dealer_id from its token). A serial already
    registered is a 409; a sale date in the future a 422."""
    command = RegisterProduct(
        body.serial,
        body.model,
        body.product_line,
        body.sold_on,
        own_dealer(call.actor, body.dealer_id, "register sales"),
    )

    return await create_once(call, command, ProductView, "/v1/products", key="serial")


@router.post(
    "/v1/products/import",
    response_model=ImportReport,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "serial,model,product_line,sold_on,dealer_id\nSN-1,T-100,tractor,2025-03-01,D1\n",
                },
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_products(
    request: Request,
    call: Annotated[CommandCall, Command(Role.warranty_officer, Role.dealer, idempotent=True)],
    partial: Annotated[bool, Query(description="Import the valid rows even if others are not")] = False,
) -> Response:
    """Register many units sold: CSV with a header line (`serial,model,product_line,sold_on,dealer_id`) or
    JSON lines, by Content-Type. Every row is validated; errors come back per row with its line number. With
    any error nothing is imported (422), unless `partial=true`: then the valid rows are."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = IMPORT_TYPES.get(content_type)
    if fmt is None:
        raise Problem(
            415,
            "Send the rows as text/csv or application/x-ndjson (JSON lines).",
            slug="unsupported-media-type",
            errors=[{"field": "Content-Type", "reason": content_type or "none"}],
        )
    body = await request.body()
    if len(body) > MAX_IMPORT_BYTES:
        raise Problem(413, f"An import may hold at most {MAX_IMPORT_BYTES // (1024 * 1024)} MB.", slug="too-large")
    try:
        checked = parse(body, fmt, today=request.app.state.clock.now().date(), dealer_scope=call.actor.dealer_scope)
    except ImportRejected as exc:
        raise Problem(
            413 if exc.too_large else 422,
            f"The file cannot be imported: {exc.detail}",
            slug="import-rejected",
            errors=[e.as_dict() for e in exc.errors],
        ) from exc
    command = ImportProducts(tuple(checked.rows), tuple(checked.errors), allow_partial=partial)

    return await create_once(call, command, ImportReport)


@router.get("/v1/products/{serial}", response_model=ProductView, dependencies=[Permission(*STAFF_READERS, Role.dealer)])
async def get_product(serial: Serial, actor: CurrentActor, queries: Queries) -> ProductView:
    """A registered unit. Dealers see only their own sales (404 otherwise)."""
    return ProductView.model_validate(await queries.product(serial, actor))


@router.get("/v1/products", response_model=Page[ProductView], dependencies=[Permission(*STAFF_READERS, Role.dealer)])
async def list_products(
    actor: CurrentActor,
    queries: Queries,
    dealer_id: Annotated[str | None, Query(max_length=80)] = None,
    product_line: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ProductView]:
    """Registered units in registration order, by dealer and product line. Dealers list only their own."""
    own_dealer(actor, dealer_id, "list sales")
    items, after = await queries.products(
        actor, dealer_id=dealer_id, product_line=product_line, limit=limit, after=cursor_value(cursor, int)
    )
    return page(ProductView, items, after)


@router.post(
    "/v1/warranty-policies",
    response_model=PolicyView,
    status_code=201,
)
async def set_warranty_policy(
    body: PolicyBody, call: Annotated[CommandCall, Command(Role.warranty_officer, idempotent=True)]
) -> Response:
    """Set a product line's warranty for units sold on or after `effective_from` (all units when absent): the
    months, longer coverage for named part categories, and the excluded wear-part categories. Units already
    sold keep the version in force on their sale date."""
    if call.actor.dealer_scope is not None:  # policies are the manufacturer's, no dealer's row
        raise Problem(
            403, "A dealer token may not set warranty policies, whatever other roles it holds.", slug="forbidden"
        )
    command = SetWarrantyPolicy(
        body.product_line, body.months, dict(body.part_months), list(body.excluded_categories), body.effective_from
    )

    return await create_once(call, command, PolicyView, "/v1/warranty-policies", key="product_line")


@router.get(
    "/v1/warranty-policies/{product_line}",
    response_model=PolicyView,
    dependencies=[Permission(*STAFF_READERS, Role.dealer, Role.technician)],
)
async def get_warranty_policy(product_line: Annotated[str, Path(max_length=72)], queries: Queries) -> PolicyView:
    """A product line's policy versions."""
    return PolicyView.model_validate(await queries.policy(product_line))


@router.get(
    "/v1/warranty-policies",
    response_model=Page[PolicyView],
    dependencies=[Permission(*STAFF_READERS, Role.dealer, Role.technician)],
)
async def list_warranty_policies(queries: Queries, limit: Limit = 50, cursor: Cursor = None) -> Page[PolicyView]:
    """Every product line's policy, by product line."""
    items, after = await queries.policies(limit, cursor_value(cursor, str))
    return page(PolicyView, items, after)


@router.get(
    "/v1/coverage",
    response_model_exclude_unset=True,  # `part` only when a category was asked about
    response_model=CoverageView,
    dependencies=[Permission(*STAFF_READERS, Role.dealer, Role.technician)],
    responses=UNKNOWN_REFERENCE,
)
async def get_coverage(
    queries: Queries,
    serial: Annotated[str, Query(min_length=1, max_length=80)],
    on: Annotated[date | None, Query(description="The day to judge (default today, UTC)")] = None,
    category: Annotated[
        str | None, Query(min_length=1, max_length=80, description="Also judge this part category")
    ] = None,
) -> CoverageView:
    """Is a registered unit covered on a day? With the last covered day (inclusive) of the unit and of each
    named part category (null for excluded wear parts), and the reason. Any dealer may ask about any serial:
    a unit is often repaired by another dealer than the one that sold it."""
    return CoverageView.model_validate(await queries.coverage(serial, on, category))


__all__ = ["router"]
