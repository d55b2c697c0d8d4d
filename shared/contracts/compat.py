"""Is a new JSON Schema of an event a safe successor of the published one? Consumers written against the
old schema must still read new events, and the new model must still read old, stored events.

Safe: adding an optional field, adding an enum value, changing descriptions. Breaking: removing a field,
making a field required, changing a type or format, removing an enum value. A breaking change needs a new
version of the event (a new model with `version=2`), never an edit of the old one."""

from __future__ import annotations

from typing import Any

_IGNORED = {"description", "title", "default", "examples", "x-topic", "x-version", "x-subject", "$schema", "$id"}


def breaking_changes(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    problems: list[str] = []
    where = path or "<root>"
    if "enum" in old:
        removed = [v for v in old["enum"] if v not in new.get("enum", [])]
        if removed:
            problems.append(f"{where}: enum values removed: {removed}")
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, old_prop in old_props.items():
        if name not in new_props:
            problems.append(f"{path}.{name}: field removed".lstrip("."))
        else:
            problems += breaking_changes(old_prop, new_props[name], f"{path}.{name}".lstrip("."))
    newly_required = set(new.get("required", [])) - set(old.get("required", []))
    for name in sorted(newly_required):
        problems.append(f"{path}.{name}: field is now required".lstrip("."))
    for sub in ("items", "additionalProperties"):
        if isinstance(old.get(sub), dict) and isinstance(new.get(sub), dict):
            problems += breaking_changes(old[sub], new[sub], f"{path}[{sub}]")
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in old or combinator in new:
            if _strip(old.get(combinator)) != _strip(new.get(combinator)):
                problems.append(f"{where}: {combinator} changed")
    for defs in ("$defs",):
        for name, old_def in old.get(defs, {}).items():
            if name in new.get(defs, {}):
                problems += breaking_changes(old_def, new[defs][name], f"{defs}.{name}")
    for key in set(old) | set(new):
        if key in _IGNORED | {
            "properties",
            "required",
            "enum",
            "items",
            "additionalProperties",
            "anyOf",
            "oneOf",
            "allOf",
            "$defs",
        }:
            continue
        if _strip(old.get(key)) != _strip(new.get(key)):
            problems.append(f"{where}: '{key}' changed from {old.get(key)!r} to {new.get(key)!r}")
    return problems


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _IGNORED}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value
