"""The event contracts are published (JSON Schema + AsyncAPI) and guarded against breaking changes."""

import json
from pathlib import Path

import pytest

from shared.contracts import REGISTRY
from shared.contracts.compat import breaking_changes
from shared.contracts.export import OUT, file_name, rendered, schema_of

PUBLISHED = {p.name: json.loads(p.read_text()) for p in Path(OUT).glob("*.v*.json")}


def test_the_published_schemas_match_the_models_so_consumers_read_what_we_write():
    stale = [name for name, text in rendered().items() if not (OUT / name).exists() or (OUT / name).read_text() != text]
    assert stale == [], f"run `make contracts` and commit docs/contracts: {stale}"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_no_published_event_version_changed_in_a_breaking_way(name):
    model = next((m for m in REGISTRY.all() if file_name(m) == name), None)
    assert model is not None, f"{name} was published and its model is gone: keep old versions readable"
    assert breaking_changes(PUBLISHED[name], schema_of(model)) == []


def test_every_event_type_names_its_topic_subject_and_documentation():
    for model in REGISTRY.all():
        assert model.topic.endswith(".events")
        assert model.subject_field in model.model_fields
        assert model.description, f"{model.event_type} needs a docstring: it becomes the schema's description"


BASE = {
    "type": "object",
    "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "kind": {"enum": ["x", "y"]}},
    "required": ["a"],
}


def _changed(**edits):
    schema = json.loads(json.dumps(BASE))
    for key, value in edits.items():
        schema[key] = value
    return schema


def test_the_guard_accepts_a_new_optional_field_and_a_new_enum_value():
    new = _changed(properties={**BASE["properties"], "c": {"type": "string"}, "kind": {"enum": ["x", "y", "z"]}})
    assert breaking_changes(BASE, new) == []


@pytest.mark.parametrize(
    "new, expected",
    [
        (_changed(properties={"a": {"type": "string"}, "kind": {"enum": ["x", "y"]}}), "b: field removed"),
        (_changed(required=["a", "b"]), "b: field is now required"),
        (_changed(properties={**BASE["properties"], "b": {"type": "string"}}), "b: 'type' changed"),
        (_changed(properties={**BASE["properties"], "kind": {"enum": ["x"]}}), "kind: enum values removed"),
    ],
)
def test_the_guard_rejects_breaking_changes(new, expected):
    assert any(expected in problem for problem in breaking_changes(BASE, new))
