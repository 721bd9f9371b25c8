"""Validate a mapping document against ``mapping.schema.json`` and turn the best error into one clear sentence.

jsonschema's own messages (``Additional properties are not allowed ('foo' was unexpected)``, ``False schema
does not allow 1``) are written for schema authors. Users need the key path, the position and what to write
instead, so each kind of error gets its own sentence here, with "did you mean" suggestions from difflib.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from logmap.errors import MappingError
from logmap.mapping import defaults
from logmap.mapping.positions import Located, join_path
from logmap.mapping.schema_build import RULE_CONDITION_KEYS
from logmap.memo import Remembered, digest
from logmap.records.types import INTERACTION_TYPES, RULE_FIELDS

SCHEMA_FILE = "mapping.schema.json"


def schema_path() -> Path:
    """Where the installed package keeps ``mapping.schema.json`` (for `# yaml-language-server: $schema=`)."""
    return Path(str(resources.files("logmap.mapping").joinpath(SCHEMA_FILE)))


@cache
def mapping_schema() -> dict[str, Any]:
    """The mapping-file JSON Schema (draft 2020-12)."""
    return json.loads(resources.files("logmap.mapping").joinpath(SCHEMA_FILE).read_text("utf-8"))


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(mapping_schema())


#: Documents found valid, by :func:`~logmap.memo.digest`: jsonschema takes ~30 ms per mapping, and a process loads
#: the same mapping again and again (a test suite; a service converting many small inputs).
_VALID: Remembered[bytes, bool] = Remembered(256)


def validate_document(located: Located, name: str) -> None:
    """Raise MappingError for the first schema violation in document order (the one a reader meets first)."""
    seen = digest(located.value)
    if seen in _VALID:
        return
    errors = list(_validator().iter_errors(located.value))
    if not errors:
        _VALID.remember(seen, True)
        return
    found = []
    for error in errors:
        key, message, at_key = _translate(error, located)
        position = located.position(key) if at_key else located.value_position(key)
        found.append((position, -key.count(".") - key.count("["), key, message))
    (line, column), _, key, message = min(found)
    raise MappingError(message, file=name, line=line, column=column, key=key or None)


def path_of(parts: Iterable[str | int], start: str = "") -> str:
    """``['rules', 2, 'type']`` → ``rules[2].type``."""
    path = start
    for part in parts:
        path = join_path(path, part)
    return path


def _suggest(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(type(value), "a value")


def _is_rule(path: list[str | int]) -> bool:
    return len(path) == 2 and path[0] == "rules" and isinstance(path[1], int)


def unknown_key_message(name: str, allowed: Iterable[str], what: str = "key") -> str:
    """``unknown key 'foo' (expected one of: …)``, or ``unknown key 'stauts' (did you mean 'status'?); expected
    one of: …`` when one is close."""
    allowed = list(allowed)
    close = _suggest(name, allowed)
    if close:
        return f"unknown {what} '{name}' (did you mean '{close}'?); expected one of: {', '.join(allowed)}"
    return f"unknown {what} '{name}' (expected one of: {', '.join(allowed)})"


def unknown_type_message(type_name: Any) -> str:
    """``unknown interaction type 'product_view' (did you mean 'product_detail_page_view'?)``."""
    text = str(type_name)
    normalised = text.strip().lower().replace(" ", "_").replace("-", "_")
    close = defaults.TYPE_ALIASES.get(normalised) or (normalised if normalised in INTERACTION_TYPES else None)
    close = close or _suggest(normalised, INTERACTION_TYPES)
    if close:
        return f"unknown interaction type '{text}' (did you mean '{close}'?)"
    return f"unknown interaction type '{text}' (one of: {', '.join(INTERACTION_TYPES)})"


def _allowed_rule_keys(rule: Any) -> list[str]:
    type_name = rule.get("type") if isinstance(rule, dict) else None
    fields = RULE_FIELDS.get(type_name) if isinstance(type_name, str) else None
    if fields is None:
        fields = frozenset().union(*RULE_FIELDS.values())
    return [*RULE_CONDITION_KEYS, *sorted(fields)]


def _translate(error: ValidationError, located: Located) -> tuple[str, str, bool]:
    """(key path, message, whether to point at the key rather than the value) for one jsonschema error,
    descending into anyOf/oneOf alternatives."""
    path = list(error.absolute_path)
    key = path_of(path)
    validator = error.validator
    schema_path = list(error.absolute_schema_path)
    # Parts of the document and of the schema: JSON values, typed by the stubs as unions that include "unset".
    instance: Any = error.instance
    error_schema: Any = error.schema
    expected: Any = error.validator_value

    if validator is None and schema_path and schema_path[-1] == "properties":
        # A `false` subschema: a rule field the rule's type does not allow (jsonschema leaves the field name out
        # of the error's path, so find which forbidden key the object has).
        parent = _instance_at(located.value, path)
        if _is_rule(path):
            type_name = parent.get("type")
            allowed_keys = set(_allowed_rule_keys(parent))
            field = next((k for k in parent if k not in allowed_keys), "?")
            allowed = ", ".join(sorted(RULE_FIELDS[type_name]))
            return (join_path(key, field),
                    f"field '{field}' is not allowed for type '{type_name}' (allowed: {allowed})", True)
        if path == ["source"] and isinstance(parent, dict):
            exports = ", ".join(defaults.EXPORT_FORMATS)
            return (join_path(key, "options"),
                    f"'options' applies to export formats ({exports}), not to '{parent.get('format')}'", True)
        return key, "a key here is not allowed in this combination", True
    if validator == "additionalProperties":
        known = set(error_schema.get("properties", {}))
        patterns = error_schema.get("patternProperties", {})
        extra = [k for k in instance if k not in known and not any(_matches(p, k) for p in patterns)]
        name = extra[0] if extra else "?"
        allowed = _allowed_rule_keys(instance) if _is_rule(path) else list(error_schema.get("properties", {}))
        if path == ["source"] and instance.get("format") in defaults.ACCESS_LOG_FORMATS:
            allowed = [k for k in allowed if k != "options"]
        return join_path(key, name), unknown_key_message(name, allowed), True
    if validator == "enum" and path and path[-1] == "type" and expected == list(INTERACTION_TYPES):
        return key, unknown_type_message(instance), False
    if validator == "required":
        missing = [r for r in expected if r not in instance]
        name = missing[0] if missing else "?"
        if "then" in schema_path and _is_rule(path):
            return key, f"type '{instance.get('type')}' requires '{name}'", False
        return key, f"missing required key '{name}'", False
    schema = error.schema if isinstance(error.schema, dict) else {}
    if validator in ("anyOf", "oneOf"):
        inner = _best_alternative(error)
        structural = inner is not None and inner.validator not in ("pattern", "minimum", "maximum", "minLength")
        if inner is not None and (len(inner.absolute_path) > len(path) or structural or not _has_message(schema)):
            return _translate(inner, located)
    if "x-message" in schema:
        return key, schema["x-message"].replace("{value}", _describe(error.instance)), False
    if "errorMessage" in schema:
        return key, f"{schema['errorMessage']}, got {_describe(error.instance)}", False
    return key, _generic(error), False


def _has_message(schema: dict[str, Any]) -> bool:
    return "x-message" in schema or "errorMessage" in schema


def _matches(pattern: str, key: str) -> bool:
    return re.search(pattern, key) is not None


def _instance_at(document: Any, path: list[str | int]) -> Any:
    node = document
    for part in path:
        node = node[part]
    return node


def _best_alternative(error: ValidationError) -> ValidationError | None:
    """The error of the alternative the user evidently meant: the one whose type matched but failed deeper.

    When the value is a mapping and one alternative is an object schema, the object's own errors (an unknown key,
    say) are more useful than "expected a string". None when every alternative failed on the value's type itself.
    """
    depth = len(error.absolute_path)
    candidates = [e for e in error.context or []
                  if not (e.validator in ("type", "const", "enum") and len(e.absolute_path) == depth)]
    deeper_or_specific = [e for e in candidates if len(e.absolute_path) > depth
                          or e.validator in ("additionalProperties", "required", "pattern", "minItems", "minimum",
                                             "maximum", "minLength", "anyOf", "oneOf", None)]
    if not deeper_or_specific:
        return None
    # Prefer an alternative whose errors are deepest: it matched the outer shape.
    return max(deeper_or_specific, key=lambda e: (len(e.absolute_path), e.validator != "pattern"))


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return _kind(value)
    return f"{value!r}" if isinstance(value, str) else f"{json.dumps(value)}"


def _generic(error: ValidationError) -> str:
    validator = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    if validator == "type":
        wanted: list[str] = value if isinstance(value, list) else [value]
        names = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
                 "number": "a number", "boolean": "true or false", "null": "nothing"}
        return f"expected {' or '.join(names.get(w, w) for w in wanted)}, got {_kind(instance)}"
    if validator == "const":
        return f"expected {json.dumps(value)}, got {_describe(instance)}"
    if validator == "enum":
        return f"expected one of: {', '.join(map(str, value))}; got {_describe(instance)}"
    if validator == "minItems":
        return "the list must not be empty" if value == 1 else f"expected at least {value} entries"
    if validator == "minProperties":
        return "the mapping must not be empty"
    if validator == "minLength":
        return "must not be empty"
    if validator in ("minimum", "maximum"):
        return f"{_describe(instance)} is out of range ({validator} {value})"
    if validator == "pattern":
        return f"{_describe(instance)} does not have the expected form ({value})"
    if validator == "propertyNames":
        return f"{_describe(instance)} is not a valid name here"
    return error.message
