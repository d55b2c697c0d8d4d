"""Event contracts: every event type is a versioned pydantic model registered under (type, version)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer

from shared.clock import as_utc, rfc3339

UtcDateTime = Annotated[
    datetime,
    AfterValidator(as_utc),
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
]


class EventData(BaseModel):
    """The `data` of a CloudEvent. Readers are tolerant: unknown fields are ignored, so that adding an
    optional field is not a breaking change for consumers."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    version: ClassVar[int]
    topic: ClassVar[str]
    subject_field: ClassVar[str]
    description: ClassVar[str] = ""

    @property
    def subject(self) -> str:
        return str(getattr(self, self.subject_field))

    @classmethod
    def dataschema(cls) -> str:
        return f"{cls.event_type}/{cls.version}"


class Registry:
    """(type, version) → model. The one place consumers look up how to read an event."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, int], type[EventData]] = {}

    def register(self, model: type[EventData]) -> None:
        key = (model.event_type, model.version)
        if key in self._models and self._models[key] is not model:
            raise ValueError(f"event {key} registered twice")
        self._models[key] = model

    def get(self, event_type: str, version: int) -> type[EventData] | None:
        return self._models.get((event_type, version))

    def knows_type(self, event_type: str) -> bool:
        return any(t == event_type for t, _ in self._models)

    def all(self) -> list[type[EventData]]:
        return [self._models[k] for k in sorted(self._models)]


REGISTRY = Registry()

E = TypeVar("E", bound=type[EventData])


def event(event_type: str, *, version: int = 1, topic: str, subject: str) -> Callable[[E], E]:
    """Class decorator: name, version and route an event model, and register it."""

    def wrap(model: E) -> E:
        model.event_type = event_type
        model.version = version
        model.topic = topic
        model.subject_field = subject
        model.description = (model.__doc__ or "").strip()
        REGISTRY.register(model)
        return model

    return wrap


def parse_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
