"""Export the event contracts as JSON Schema (one file per type and version) and an AsyncAPI 2.6 document,
so internal apps can consume our topics without reading our code.

`python -m shared.contracts.export` writes them to docs/contracts/; `--check` fails when they are stale."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared.contracts import REGISTRY
from shared.contracts.base import EventData
from shared.contracts.compat import breaking_changes

OUT = Path(__file__).resolve().parents[2] / "docs" / "contracts"

CE_HEADERS = {
    "ce_specversion": "1.0",
    "ce_id": "event id (uuid); consumers deduplicate on it",
    "ce_source": "the producing service",
    "ce_type": "event type, e.g. service_request.received",
    "ce_subject": "aggregate id; also the record key",
    "ce_time": "when it happened in the business (RFC 3339, UTC)",
    "ce_dataschema": "<type>/<version>",
    "ce_sequence": "version of the event in its aggregate's stream",
    "ce_recordedat": "when it was stored",
    "ce_correlationid": "the command that started the chain",
    "ce_causationid": "the event (or command) that caused this one",
    "ce_actor": "who caused it: `user:<sub>` for a command from a token, `user:<sub>;dealer=<dealer_id>` for a "
    "dealer token, `system:<service>` for a reaction or a timer, `system:unknown` for events stored before actors "
    "were kept; `%`, `;` and control characters inside <sub> and <dealer_id> are percent-encoded",
    "traceparent": "W3C trace context",
    "content-type": "application/json",
}


def schema_of(model: type[EventData]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": model.dataschema(),
        "title": model.event_type,
        "description": model.description,
        "x-topic": model.topic,
        "x-version": model.version,
        "x-subject": model.subject_field,
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def file_name(model: type[EventData]) -> str:
    return f"{model.event_type}.v{model.version}.json"


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for model in REGISTRY.all():
        channel = channels.setdefault(model.topic, {"subscribe": {"message": {"oneOf": []}}})
        channel["subscribe"]["message"]["oneOf"].append(
            {
                "name": model.event_type,
                "title": f"{model.event_type} v{model.version}",
                "summary": model.description,
                "contentType": "application/json",
                "headers": {
                    "type": "object",
                    "properties": {k: {"type": "string", "description": v} for k, v in CE_HEADERS.items()},
                },
                "payload": {"$ref": f"./{file_name(model)}"},
                "bindings": {"kafka": {"key": {"type": "string", "description": f"the {model.subject_field}"}}},
            }
        )
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": "Servicetrail events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 in the Kafka binding's binary mode: the value is `data` as JSON, "
            "the attributes travel as ce_* headers, the key is the subject.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
    }


def rendered() -> dict[str, str]:
    files = {file_name(m): json.dumps(schema_of(m), indent=2, sort_keys=True) + "\n" for m in REGISTRY.all()}
    files["asyncapi.json"] = json.dumps(asyncapi(), indent=2, sort_keys=True) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/contracts is not up to date")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    files = rendered()
    if args.check:
        stale = [n for n, text in files.items() if not (args.out / n).exists() or (args.out / n).read_text() != text]
        if stale:
            print("stale contract exports: " + ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        published = args.out / name
        if name != "asyncapi.json" and published.exists():
            problems = breaking_changes(json.loads(published.read_text()), json.loads(text))
            if problems:
                print(
                    f"{name}: breaking change, publish a new version instead:\n  " + "\n  ".join(problems),
                    file=sys.stderr,
                )
                return 2
    for name, text in files.items():
        (args.out / name).write_text(text)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
