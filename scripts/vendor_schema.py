"""Regenerate logmap/records/interactions.schema.json from the API's OpenAPI spec.

    python scripts/vendor_schema.py ../shared/miso-api/interactions-upload.openapi.yaml

Keeps the component schemas' definitions only (no descriptions, examples or titles), rewrites
``#/components/schemas/X`` references to ``#/$defs/X``, and emits a JSON Schema (2020-12) whose root
validates one request body (``InteractionBulkIn``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

PROSE = {"description", "example", "examples", "title"}
OUT = Path(__file__).resolve().parents[1] / "logmap" / "records" / "interactions.schema.json"


def strip(node):
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in PROSE and not isinstance(value, dict):
                continue
            if key == "$ref":
                value = value.replace("#/components/schemas/", "#/$defs/")
            out[key] = strip(value)
        return out
    if isinstance(node, list):
        return [strip(item) for item in node]
    return node


def main(spec_path: str) -> None:
    spec = yaml.safe_load(Path(spec_path).read_text())
    defs = {name: strip(schema) for name, schema in spec["components"]["schemas"].items()}
    # `title` is also a property name (Page.title): strip() only drops string-valued `title` keys.
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"Vendored from {Path(spec_path).name} (components.schemas, prose removed) by scripts/vendor_schema.py",
        "$ref": "#/$defs/InteractionBulkIn",
        "$defs": defs,
    }
    OUT.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT} ({len(defs)} definitions)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/miso-api/interactions-upload.openapi.yaml")
