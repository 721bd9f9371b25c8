"""The 29 interaction types and the fields each allows, read from the vendored API schema."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

#: The server named in the API spec (here, not in the API client, so that `logmap --help` shows it without
#: importing an HTTP library).
DEFAULT_BASE_URL = "https://api.askmiso.com"
#: Fields every type carries (the record's envelope), set by identity, context and the source's time.
COMMON_FIELDS: frozenset[str] = frozenset({"type", "user_id", "anonymous_id", "timestamp", "miso_id", "context"})


@cache
def interaction_schema() -> dict[str, Any]:
    """The vendored JSON Schema (2020-12) of an upload request body, with every definition under ``$defs``."""
    text = resources.files("logmap.records").joinpath("interactions.schema.json").read_text("utf-8")
    return json.loads(text)


def _type_schemas() -> dict[str, dict[str, Any]]:
    schema = interaction_schema()
    defs = schema["$defs"]
    out: dict[str, dict[str, Any]] = {}
    for ref in defs["InteractionBulkIn"]["properties"]["data"]["items"]["anyOf"]:
        definition = defs[ref["$ref"].rsplit("/", 1)[-1]]
        (type_name,) = definition["properties"]["type"]["enum"]
        out[type_name] = definition
    return out


TYPE_SCHEMAS: dict[str, dict[str, Any]] = _type_schemas()

#: All interaction types, in the spec's order.
INTERACTION_TYPES: tuple[str, ...] = tuple(TYPE_SCHEMAS)

#: Per type: every top-level field the type allows, envelope included.
ALLOWED_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset(schema["properties"]) for name, schema in TYPE_SCHEMAS.items()
}

#: Per type: the type-specific fields a mapping rule may set (the envelope is set elsewhere, except miso_id).
RULE_FIELDS: dict[str, frozenset[str]] = {
    name: (fields - COMMON_FIELDS) | {"miso_id"} for name, fields in ALLOWED_FIELDS.items()
}

#: Per type: required fields besides `type`.
REQUIRED_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset(schema.get("required", [])) - {"type"} for name, schema in TYPE_SCHEMAS.items()
}

#: Types that carry an inferred `duration`.
DURATION_TYPES: frozenset[str] = frozenset(name for name, f in ALLOWED_FIELDS.items() if "duration" in f)
