"""Template syntax: ``'sku-{query.sku|lower}'`` → literal text and references with converters.

Only the syntax lives here, so that the loader can reject a bad template (with the character offset) before any
input is read; `logmap.transform.expressions` compiles parsed templates to polars expressions.

Grammar::

    template   = (literal | "{{" | "}}" | reference)*
    reference  = "{" choice ("|or:" choice)* ("|" converter)* "}"
    choice     = name ["?"]                      "?": an absent column or field is null, not an error
    name       = segment ("." segment)*          e.g. query.q, event_params.page_location
    segment    = identifier ["[]"]               e.g. items[] in items[].item_id (one value per list element)
    converter  = identifier [":" argument]       e.g. split:/

``{a|or:b}`` is the first of ``a``, ``b`` that is not null on the row; converters apply to that value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: Converter name → whether it takes an argument (``split:SEP``, ``field:N:SEP``).
CONVERTERS: dict[str, bool] = {
    "int": False, "float": False, "lower": False, "upper": False, "trim": False, "urldecode": False, "split": True,
    "field": True,
}
#: The separator of ``split`` when none is written.
DEFAULT_SPLIT_SEPARATOR = ","
#: The pseudo-converter that names an alternative reference: ``{a|or:b}``.
ALTERNATIVE = "or"
#: Written after a name: the name may be absent from the input (then it is null).
OPTIONAL_MARK = "?"

_SEGMENT = r"[A-Za-z_$][A-Za-z0-9_$\-]*(?:\[\])?"
_NAME = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT})*$")


def split_optional(written: str) -> tuple[str, bool]:
    """``'a.b?'`` → ``('a.b', True)``: a name as written (in a template or a ``when:`` key) and whether it is
    optional."""
    name = written.strip()
    if name.endswith(OPTIONAL_MARK):
        return name[:-1].rstrip(), True
    return name, False


class TemplateSyntaxError(ValueError):
    """A template that cannot be parsed; ``offset`` is the 0-based character offset of the problem."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at character {offset + 1})")
        self.reason = message
        self.offset = offset


@dataclass(frozen=True)
class Literal:
    """Text copied as is (escaped braces already unescaped)."""

    text: str


@dataclass(frozen=True)
class Converter:
    """One ``|name[:arg]`` step; ``arg`` is None when not written (``split`` then uses ``,``)."""

    name: str
    arg: str | None = None


@dataclass(frozen=True)
class Choice:
    """One name of a reference; ``optional`` (written ``name?``): absent from the input means null."""

    name: str
    optional: bool = False


@dataclass(frozen=True)
class Ref:
    """A ``{name|or:other|conv…}`` reference. Tuples keep parsed templates hashable."""

    name: str
    converters: tuple[Converter, ...] = field(default_factory=tuple)
    optional: bool = False
    #: the names tried after ``name``, in order (``|or:``)
    alternatives: tuple[Choice, ...] = field(default_factory=tuple)

    @property
    def choices(self) -> tuple[Choice, ...]:
        """Every name of the reference in the order tried: ``name``, then the alternatives."""
        return (Choice(self.name, self.optional), *self.alternatives)


@dataclass(frozen=True)
class Template:
    """A parsed template: a sequence of :class:`Literal` and :class:`Ref` parts (iterable, indexable)."""

    source: str
    parts: tuple[Literal | Ref, ...]

    @property
    def refs(self) -> list[Ref]:
        return [p for p in self.parts if isinstance(p, Ref)]

    def __iter__(self) -> Iterator[Literal | Ref]:
        return iter(self.parts)

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, index: int) -> Literal | Ref:
        return self.parts[index]


def _parse_name(raw: str, offset: int, empty: str) -> Choice:
    """A name as written, possibly ending in ``?``; ``offset`` is the position of ``raw``'s first character."""
    name, optional = split_optional(raw)
    at = offset + len(raw) - len(raw.lstrip())
    if not name:
        raise TemplateSyntaxError(empty, at)
    if not _NAME.match(name):
        raise TemplateSyntaxError(
            f"'{name}' is not a field name (write names like path, query.q, items[].item_id or a.b? when it may "
            f"be absent)", at)
    return Choice(name, optional)


def _parse_ref(body: str, offset: int) -> Ref:
    """Parse the inside of ``{…}``; ``offset`` is the position of the first character after ``{``."""
    pieces = body.split("|")
    raw_name = pieces[0]
    if not raw_name.strip():
        raise TemplateSyntaxError("empty reference: write a field name between the braces, like {path}", offset - 1)
    first = _parse_name(raw_name, offset, "empty reference")
    alternatives: list[Choice] = []
    converters: list[Converter] = []
    position = offset + len(raw_name) + 1
    for piece in pieces[1:]:
        conv_name, colon, arg = piece.strip().partition(":")
        at = position + len(piece) - len(piece.lstrip())
        if conv_name == ALTERNATIVE:
            if converters:
                raise TemplateSyntaxError("'or:' comes before the converters: write {a|or:b|lower}", at)
            start = position + piece.index(":") + 1 if colon else at
            alternatives.append(_parse_name(arg if colon else "", start,
                                            "'or:' needs the name of another field, like {a|or:b}"))
            position += len(piece) + 1
            continue
        if conv_name not in CONVERTERS:
            known = ", ".join(sorted(CONVERTERS))
            what = f"unknown converter '{conv_name}'" if conv_name else "empty converter after '|'"
            raise TemplateSyntaxError(f"{what} (known: {known})", at)
        if colon and not CONVERTERS[conv_name]:
            raise TemplateSyntaxError(f"converter '{conv_name}' takes no argument", at)
        converters.append(Converter(conv_name, arg if colon and arg else None))
        position += len(piece) + 1
    return Ref(first.name, tuple(converters), first.optional, tuple(alternatives))


def parse_template(text: str) -> Template:
    """Split a template into literals and references; ``{{`` and ``}}`` are literal braces.

    Raises TemplateSyntaxError (with the offending character's offset) for an unclosed ``{``, a lone ``}``, an
    empty reference, a name that is not a field path, or an unknown converter.
    """
    parts: list[Literal | Ref] = []
    buffer: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            buffer.append(char)
            i += 2
        elif char == "{":
            end = text.find("}", i + 1)
            nested = text.find("{", i + 1)
            if end == -1 or (nested != -1 and nested < end):
                raise TemplateSyntaxError("unclosed '{' (write '{{' for a literal brace)", i)
            if buffer:
                parts.append(Literal("".join(buffer)))
                buffer = []
            parts.append(_parse_ref(text[i + 1:end], i + 1))
            i = end + 1
        elif char == "}":
            raise TemplateSyntaxError("unmatched '}' (write '}}' for a literal brace)", i)
        else:
            buffer.append(char)
            i += 1
    if buffer:
        parts.append(Literal("".join(buffer)))
    return Template(text, tuple(parts))


def as_reference(written: str) -> str:
    """A column reference written without braces — a ``when:`` key, ``source.options.time.column`` — as the
    template of that one reference: ``'a.b?|or:c'`` → ``'{a.b?|or:c}'`` (optional and alternative names work
    there as in templates)."""
    return "{" + written + "}"


def template_refs(value: Any) -> set[str]:
    """Every reference name used in a template, or in (nested) lists and mappings of templates.

    Non-string leaves (YAML numbers and booleans are literal values) contribute nothing.
    """
    if isinstance(value, str):
        return {choice.name for ref in parse_template(value).refs for choice in ref.choices}
    if isinstance(value, list):
        return set().union(*(template_refs(v) for v in value))
    if isinstance(value, dict):
        return set().union(*(template_refs(v) for v in value.values()))
    return set()
