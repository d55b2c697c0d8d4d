"""Handler tables keyed by class, with dependencies bound once by signature.

A command handler is `async def triage(command: TriageServiceRequest, actor: Actor, uow: UnitOfWork, ...)`;
a reaction `async def note_coverage(event: IncomingEvent[WarrantyChecked], uow: UnitOfWork, ...)`. The
first parameter is the message; every other parameter is found by its annotation: the per-call values
(`Actor`, `UnitOfWork`, `Metadata`) or a service dependency given once at start-up (`ComplaintSla`,
`Clock`…). At start-up each handler is checked: its first annotation must be its key (the command class, or
`IncomingEvent[<the contract class>]`), and every other parameter must be resolvable; a mismatch fails the
service's start, not a request."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.contracts.base import EventData
from shared.events import IncomingEvent

PER_CALL = "per-call"


class HandlerMismatch(TypeError):
    """A handler's signature does not fit its key or names a dependency nobody provides."""


@dataclass(frozen=True)
class BoundHandler:
    """A handler with its dependencies resolved: called with the message and the per-call values."""

    key: type
    function: Callable[..., Awaitable[Any]]
    # For each parameter after the first: ("per-call", type) or ("static", value).
    arguments: tuple[tuple[str, Any], ...]

    async def __call__(self, message: Any, per_call: Mapping[type, Any]) -> Any:
        args = [message]
        for source, value in self.arguments:
            args.append(per_call[value] if source == PER_CALL else value)
        return await self.function(*args)


def _hints(function: Callable[..., Any]) -> tuple[list[inspect.Parameter], dict[str, Any]]:
    try:
        hints = typing.get_type_hints(function)
    except Exception as exc:  # an annotation that does not resolve is a start-up error too
        raise HandlerMismatch(f"{function.__qualname__}: annotations do not resolve ({exc})") from exc
    return list(inspect.signature(function).parameters.values()), hints


def bind(
    key: type,
    function: Callable[..., Awaitable[Any]],
    *,
    message_annotation: Any,
    per_call: tuple[type, ...],
    provided: Mapping[type, Any],
) -> BoundHandler:
    """Check `function` against its key and resolve its other parameters once."""
    parameters, hints = _hints(function)
    if not parameters:
        raise HandlerMismatch(f"{function.__qualname__} takes no message")
    first = hints.get(parameters[0].name)
    if first != message_annotation:
        raise HandlerMismatch(
            f"{function.__qualname__} is registered for {_name(message_annotation)} but its "
            f"first parameter is annotated {_name(first)}"
        )
    arguments: list[tuple[str, Any]] = []
    for parameter in parameters[1:]:
        wanted = hints.get(parameter.name)
        if wanted in per_call:
            arguments.append((PER_CALL, wanted))
        elif wanted is not None and wanted in provided:
            arguments.append(("static", provided[wanted]))
        else:
            raise HandlerMismatch(
                f"{function.__qualname__}: nothing provides parameter {parameter.name!r} of type {_name(wanted)}"
            )
    return BoundHandler(key, function, tuple(arguments))


def _name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


def bind_commands(
    table: Mapping[type, Callable[..., Awaitable[Any]]], *, per_call: tuple[type, ...], provided: Mapping[type, Any]
) -> dict[type, BoundHandler]:
    return {
        key: bind(key, function, message_annotation=key, per_call=per_call, provided=provided)
        for key, function in table.items()
    }


def bind_reactions(
    table: Mapping[type[EventData], Callable[..., Awaitable[Any]]],
    *,
    per_call: tuple[type, ...],
    provided: Mapping[type, Any],
) -> dict[type[EventData], BoundHandler]:
    bound: dict[type[EventData], BoundHandler] = {}
    for key, function in table.items():
        if not (isinstance(key, type) and issubclass(key, EventData) and getattr(key, "event_type", None)):
            raise HandlerMismatch(f"reaction keys are contract event classes, not {key!r}")
        bound[key] = bind(
            key,
            function,
            message_annotation=IncomingEvent[key],  # type: ignore[valid-type]
            per_call=per_call,
            provided=provided,
        )
    return bound
