"""YAML → plain Python values plus the 1-based position of every key and list item.

PyYAML's ``safe_load`` forgets where values came from; we compose the node graph instead and convert it
ourselves, so that every later error (schema, regex, template) can name ``file:line:column``. Key paths are
written like ``rules[2].revenue``: ``position`` is where the *key* starts (an unknown key is reported there) and
``value_position`` where its value starts (a bad regex or template is reported there); for a list item both are
where the item starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from logmap.errors import MappingError

#: Scalars converted to Python values; every other scalar (dates, timestamps, binary…) stays the text written,
#: because the mapping language has no dates and JSON Schema validates JSON types only.
_TYPED_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
               "tag:yaml.org,2002:null"}
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: Values a mapping may expand to. A real mapping has hundreds; YAML aliases can make a few lines expand to
#: billions (a "billion laughs"), which would take minutes and gigabytes before any check ran.
MAX_VALUES = 20_000
#: libyaml's parser when PyYAML was built with it (ten times faster; the same nodes and marks), else PyYAML's own
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Located:
    """A parsed document with the position of each key path (``""`` is the document itself)."""

    value: Any
    positions: dict[str, tuple[int, int]]
    value_positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    def position(self, key: str) -> tuple[int, int]:
        """Where ``key`` is written, or its nearest written ancestor (e.g. for a default that is not written)."""
        probe = key
        while probe and probe not in self.positions:
            probe = parent_path(probe)
        return self.positions.get(probe, (1, 1))

    def value_position(self, key: str) -> tuple[int, int]:
        """Where the value of ``key`` starts; falls back like :meth:`position`."""
        return self.value_positions.get(key) or self.position(key)


def join_path(path: str, part: str | int) -> str:
    """``join_path('rules', 2)`` → ``rules[2]``; ``join_path('rules[2]', 'type')`` → ``rules[2].type``."""
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else str(part)


def parent_path(path: str) -> str:
    """The key path one level up: ``rules[2].type`` → ``rules[2]`` → ``rules`` → ``""``."""
    if path.endswith("]"):
        return path[:path.rindex("[")]
    return path.rpartition(".")[0] if "." in path else ""


def load_located(text: str, name: str) -> Located:
    """Parse one YAML document keeping positions; YAML errors become MappingError at the problem's position."""
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "syntax error"
        raise MappingError(f"not valid YAML: {problem}", file=name, line=mark.line + 1 if mark else None,
                           column=mark.column + 1 if mark else None) from None
    except yaml.YAMLError as error:  # e.g. a second document
        raise MappingError(f"not valid YAML: {error}", file=name) from None
    if node is None:
        raise MappingError("the mapping is empty: start with 'logmap: 1'", file=name, line=1, column=1)
    converter = _Converter(name)
    value = converter.convert(node, "")
    return Located(value, converter.positions, converter.value_positions)


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Converter:
    def __init__(self, name: str) -> None:
        self.name = name
        self.positions: dict[str, tuple[int, int]] = {}
        self.value_positions: dict[str, tuple[int, int]] = {}
        self.constructor = yaml.SafeLoader("")
        self.values = 0

    def convert(self, node: yaml.Node, path: str) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            line, column = _pos(node)
            raise MappingError(f"the mapping expands to more than {MAX_VALUES:,} values: YAML aliases (*name) "
                               "nested inside each other repeat their anchors; write the values out instead",
                               file=self.name, line=line, column=column, key=path or None)
        self.positions.setdefault(path, _pos(node))
        self.value_positions.setdefault(path, _pos(node))
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            out = []
            for index, item in enumerate(node.value):
                child = join_path(path, index)
                out.append(self.convert(item, child))
            return out
        if node.tag in _TYPED_TAGS:
            return self.constructor.construct_object(node)
        return str(node.value)

    def mapping(self, node: yaml.MappingNode, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: list[Any] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *anchor` merges the anchor's keys (explicit keys win)
                value = self.convert(value_node, path)
                merged.extend(value if isinstance(value, list) else [value])
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise MappingError("a key must be a plain name, not a list or mapping", file=self.name,
                                   line=_pos(key_node)[0], column=_pos(key_node)[1], key=path or None)
            key = key_node.value
            child = join_path(path, key)
            if key in out:
                raise MappingError(f"duplicate key '{key}' (each key may appear once)", file=self.name,
                                   line=_pos(key_node)[0], column=_pos(key_node)[1], key=child)
            self.positions[child] = _pos(key_node)
            out[key] = self.convert(value_node, child)
        for item in merged:
            if isinstance(item, dict):
                for key, value in item.items():
                    out.setdefault(key, value)
        return out
