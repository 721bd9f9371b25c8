"""Template syntax: ``'sku-{query.sku|lower}'`` → literal text and references with converters.

Only the syntax lives here; `logmap.transform.expressions` compiles templates to polars expressions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

CONVERTERS = {"int", "float", "lower", "upper", "trim", "urldecode", "split"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(?:\[\])?(?:\.[A-Za-z_][A-Za-z0-9_\-]*(?:\[\])?)*$")


class TemplateSyntaxError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at character {offset + 1})")
        self.offset = offset


@dataclass(frozen=True)
class Literal:
    text: str


@dataclass(frozen=True)
class Converter:
    name: str
    arg: str | None = None


@dataclass(frozen=True)
class Ref:
    name: str
    converters: tuple[Converter, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[Literal | Ref, ...]

    @property
    def refs(self) -> list[Ref]:
        return [p for p in self.parts if isinstance(p, Ref)]


def _parse_ref(body: str, offset: int) -> Ref:
    name, *converters = [piece.strip() for piece in body.split("|")]
    if not name:
        raise TemplateSyntaxError("empty reference '{}'", offset)
    if not _NAME.match(name):
        raise TemplateSyntaxError(f"'{name}' is not a field name", offset)
    parsed = []
    for converter in converters:
        conv_name, _, arg = converter.partition(":")
        if conv_name not in CONVERTERS:
            raise TemplateSyntaxError(
                f"unknown converter '{conv_name}' (known: {', '.join(sorted(CONVERTERS))})", offset)
        parsed.append(Converter(conv_name, arg if arg else None))
    return Ref(name, tuple(parsed))


def parse_template(text: str) -> Template:
    """Split a template into literals and references; ``{{`` and ``}}`` are literal braces."""
    parts: list[Literal | Ref] = []
    buffer: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "{" and text.startswith("{{", i):
            buffer.append("{")
            i += 2
        elif char == "}" and text.startswith("}}", i):
            buffer.append("}")
            i += 2
        elif char == "{":
            end = text.find("}", i + 1)
            if end == -1:
                raise TemplateSyntaxError("unclosed '{'", i)
            if buffer:
                parts.append(Literal("".join(buffer)))
                buffer = []
            parts.append(_parse_ref(text[i + 1:end], i))
            i = end + 1
        elif char == "}":
            raise TemplateSyntaxError("unmatched '}' (write '}}' for a literal brace)", i)
        else:
            buffer.append(char)
            i += 1
    if buffer:
        parts.append(Literal("".join(buffer)))
    return Template(text, tuple(parts))


def template_refs(value: Any) -> set[str]:
    """Every reference name used in a template, or in lists and mappings of templates."""
    if isinstance(value, str):
        return {ref.name for ref in parse_template(value).refs}
    if isinstance(value, list):
        return set().union(*(template_refs(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(template_refs(v) for v in value.values())) if value else set()
    return set()
