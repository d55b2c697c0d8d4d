"""dispatch's HTTP entry points for reference data: service centers and technicians (managed by dispatchers),
and a technician's own queue of open jobs."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, StringConstraints, model_validator

from services.dispatch.api import ID_PATTERN, Dispatch, JobPage
from services.dispatch.commands import (
    RegisterServiceCenter,
    RegisterTechnician,
    UpdateServiceCenter,
    UpdateTechnician,
)
from shared.auth import Role
from shared.contracts.dispatch import CenterKind
from shared.http.commands import Command, CommandCall, StrictBody, create_once
from shared.http.pagination import Cursor, Limit, Page, keyset_after
from shared.http.security import CurrentActor, Permission

centers = APIRouter(prefix="/v1/service-centers", tags=["service centers"])
technicians = APIRouter(prefix="/v1/technicians", tags=["technicians"])

STAFF_READERS = (Role.dispatcher, Role.agent, Role.analyst, Role.warranty_officer, Role.complaints_officer)

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
ProductLine = Annotated[str, StringConstraints(min_length=1, max_length=80, strip_whitespace=True)]
CenterId = Annotated[str, Path(pattern=ID_PATTERN, description="The center's id")]
TechnicianId = Annotated[str, Path(pattern=ID_PATTERN, description="The technician's id")]


class CenterBody(StrictBody):
    id: Identifier = Field(description="Chosen by the dispatcher; letters, digits, '.', '_' and '-'")
    name: str = Field(min_length=1, max_length=200)
    region: str = Field(min_length=1, max_length=80, description="Matched against the customer's region")
    kind: CenterKind
    dealer_id: str | None = Field(
        None,
        min_length=1,
        max_length=80,
        description="The dealer an authorized_dealer center belongs to (required then)",
    )


class TechnicianBody(StrictBody):
    id: Identifier = Field(description="Also the `sub` of the technician's token")
    center_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    skills: list[ProductLine] = Field(default_factory=list, max_length=100, description="Product lines")
    active: bool = True


class _Patch(StrictBody):
    """Only the fields sent change; `null` is refused for fields that cannot be empty."""

    not_nullable: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _no_null_for_required(self):
        nulls = [name for name in self.not_nullable if name in self.model_fields_set and getattr(self, name) is None]
        if nulls:
            raise ValueError(f"may not be null: {', '.join(nulls)}")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class CenterPatch(_Patch):
    not_nullable = ("name", "region", "kind")
    name: str | None = Field(None, min_length=1, max_length=200)
    region: str | None = Field(None, min_length=1, max_length=80)
    kind: CenterKind | None = None
    dealer_id: str | None = Field(None, min_length=1, max_length=80)


class TechnicianPatch(_Patch):
    not_nullable = ("center_id", "name", "skills", "active")
    center_id: Identifier | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    skills: list[ProductLine] | None = Field(None, max_length=100)
    active: bool | None = None


class CenterView(BaseModel):
    id: str
    name: str
    region: str
    kind: CenterKind
    dealer_id: str | None
    version: int


class TechnicianView(BaseModel):
    id: str
    center_id: str
    name: str
    skills: list[str]
    active: bool
    version: int


CenterPage = Page[CenterView]


TechnicianPage = Page[TechnicianView]


@centers.post(
    "",
    status_code=201,
    responses={201: {"model": CenterView}},
    response_class=JSONResponse,
)
async def register_service_center(
    body: CenterBody, call: Annotated[CommandCall, Command(Role.dispatcher, idempotent=True)]
) -> Response:
    """Register a repair center, branch or authorized dealer. Its region decides which jobs it is offered."""
    command = RegisterServiceCenter(body.id, body.name, body.region, body.kind, body.dealer_id)
    return await create_once(call, command, CenterView, "/v1/service-centers")


@centers.get("", dependencies=[Permission(*STAFF_READERS)], response_model=CenterPage)
async def list_service_centers(
    actor: CurrentActor,
    dispatch: Dispatch,
    region: Annotated[str | None, Query(max_length=80)] = None,
    kind: Annotated[CenterKind | None, Query()] = None,
    dealer_id: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[dict[str, Any]]:
    """Centers in registration order, filtered by region, kind and dealer."""
    return await dispatch.centers(
        actor,
        region=region,
        kind=kind.value if kind else None,
        dealer_id=dealer_id,
        limit=limit,
        after=keyset_after(cursor, int),
    )


@centers.get("/{center_id}", dependencies=[Permission(*STAFF_READERS)], response_model=CenterView)
async def get_service_center(center_id: CenterId, actor: CurrentActor, dispatch: Dispatch) -> dict[str, Any]:
    """One center. A dealer-scoped token sees only its dealer's centers."""
    return await dispatch.center(center_id, actor)


@centers.patch("/{center_id}", response_model=CenterView)
async def update_service_center(
    center_id: CenterId, body: CenterPatch, call: Annotated[CommandCall, Command(Role.dispatcher)]
) -> dict[str, Any]:
    """Change a center's name, region, kind or dealer. Jobs already assigned stay where they are."""
    command = UpdateServiceCenter(center_id, **body.changes())
    result: dict[str, Any] = await call.handle(command)
    return result


@technicians.post(
    "",
    status_code=201,
    responses={201: {"model": TechnicianView}},
    response_class=JSONResponse,
)
async def register_technician(
    body: TechnicianBody, call: Annotated[CommandCall, Command(Role.dispatcher, idempotent=True)]
) -> Response:
    """Register a technician of an existing center, with the product lines they are skilled for."""
    command = RegisterTechnician(body.id, body.center_id, body.name, list(body.skills), body.active)
    return await create_once(call, command, TechnicianView, "/v1/technicians")


@technicians.get("", dependencies=[Permission(*STAFF_READERS)], response_model=TechnicianPage)
async def list_technicians(
    actor: CurrentActor,
    dispatch: Dispatch,
    center_id: Annotated[str | None, Query(max_length=64)] = None,
    skill: Annotated[str | None, Query(max_length=80, description="A product line")] = None,
    active: Annotated[bool | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[dict[str, Any]]:
    """Technicians in registration order, filtered by center, skill and whether they are active."""
    return await dispatch.technicians(
        actor, center_id=center_id, skill=skill, active=active, limit=limit, after=keyset_after(cursor, int)
    )


@technicians.get(
    "/{technician_id}", dependencies=[Permission(*STAFF_READERS, Role.technician)], response_model=TechnicianView
)
async def get_technician(technician_id: TechnicianId, actor: CurrentActor, dispatch: Dispatch) -> dict[str, Any]:
    """One technician. A technician reads only their own record."""
    return await dispatch.technician(technician_id, actor)


@technicians.patch("/{technician_id}", response_model=TechnicianView)
async def update_technician(
    technician_id: TechnicianId, body: TechnicianPatch, call: Annotated[CommandCall, Command(Role.dispatcher)]
) -> dict[str, Any]:
    """Move a technician to another center, change their skills, or (de)activate them. An inactive technician
    gets no new jobs; the jobs they hold stay theirs until a dispatcher re-assigns them."""
    command = UpdateTechnician(technician_id, **body.changes())
    result: dict[str, Any] = await call.handle(command)
    return result


@technicians.get(
    "/{technician_id}/queue", dependencies=[Permission(Role.dispatcher, Role.technician)], response_model=JobPage
)
async def technician_queue(
    technician_id: TechnicianId, actor: CurrentActor, dispatch: Dispatch, limit: Limit = 50, cursor: Cursor = None
) -> Page[dict[str, Any]]:
    """A technician's open jobs (assigned, accepted, in service, waiting for a repeat visit): priority first,
    then the next due time. A technician reads only their own queue."""
    page = await dispatch.queue(technician_id, actor, limit=limit, after=keyset_after(cursor, str))
    return page


__all__ = ["centers", "technicians"]
