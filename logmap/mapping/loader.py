"""Load a mapping file: YAML → checked, typed :class:`~logmap.mapping.model.Mapping`.

Every problem found here stops the run before any input is read, with the file, line, column and key path
(``rules[2].revenue``) of the offending node, and a sentence that says what to write instead.
"""

from __future__ import annotations

import difflib
import os
import re
import zoneinfo
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from logmap.errors import MappingError
from logmap.mapping import defaults
from logmap.mapping.model import (
    AnonymousId, Context, Durations, Filter, Identity, Mapping, QueryCondition, Rule, Source, TestCase, Where,
)
from logmap.mapping.templates import TemplateSyntaxError, parse_template
from logmap.records.types import INTERACTION_TYPES, REQUIRED_FIELDS, RULE_FIELDS

TOP_KEYS = ("logmap", "name", "description", "source", "filter", "rules", "identity", "context", "durations", "tests")
SOURCE_KEYS = ("format", "pattern", "time_format", "timezone", "site")
FILTER_KEYS = ("status", "methods", "exclude_static", "exclude_bots", "bot_patterns", "include_paths", "exclude_paths")
RULE_CONDITION_KEYS = ("name", "path", "query", "method", "status", "when", "type")
ALL_RULE_FIELDS = sorted(set().union(*RULE_FIELDS.values()))
IDENTITY_KEYS = ("user_id", "anonymous_id")
CONTEXT_KEYS = ("page", "user_agent", "truncated_ip", "campaign", "locale", "region", "custom_context")
DURATION_KEYS = ("from", "session_timeout", "max")
TEST_KEYS = ("name", "line", "lines", "row", "rows", "expect")

_GROUP = re.compile(r"\(\?P?<([A-Za-z_][A-Za-z0-9_]*)>")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
_STATUS_CLASS = re.compile(r"^([1-5])xx$")
_STATUS_RANGE = re.compile(r"^(\d{3})\s*-\s*(\d{3})$")

#: Extra keys a source format accepts; formats added later register theirs here.
SOURCE_OPTION_KEYS: dict[str, tuple[str, ...]] = {}
#: Formats besides the access-log presets (registered by other source modules).
EXTRA_FORMATS: set[str] = set()


def named_groups(pattern: str | None) -> list[str]:
    """Names of the regex's named groups, `(?P<name>…)` or `(?<name>…)`, in order."""
    return _GROUP.findall(pattern) if pattern else []


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError("mapping file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise MappingError(f"cannot read mapping: {error}", file=str(path)) from None
    return load_mapping_text(text, str(path))


def load_mapping_text(text: str, name: str = "<mapping>") -> Mapping:
    """Check a mapping given as YAML text (``name`` is used in error messages)."""
    document, positions = _compose(text, name)
    return _Builder(document, positions, name).build()


def check_mapping(path: str | Path) -> Mapping:
    """Load a mapping and also check that its anonymous-id key is available (what `logmap check` does)."""
    mapping = load_mapping(path)
    require_anonymous_key(mapping)
    return mapping


def require_anonymous_key(mapping: Mapping) -> bytes | None:
    """The HMAC key for ``anonymous_id`` from the environment; None when the mapping says ``key: none``.

    Raises MappingError (never containing the key) when the variable is unset or empty.
    """
    spec = mapping.identity.anonymous_id
    if spec is None or not spec.hmac or spec.key_none:
        return None
    value = os.environ.get(spec.key_env or "")
    if not value:
        where = mapping.identity.where
        raise MappingError(
            f"environment variable {spec.key_env} is not set: export it with a long random secret (the key of the "
            f"anonymous-id hash), or write `key: none` to use an unkeyed hash (reversible for IPv4 addresses)",
            file=where.file if where else mapping.path, line=where.line if where else None,
            column=where.column if where else None, key="identity.anonymous_id.key")
    return value.encode("utf-8")


# --- YAML with positions -------------------------------------------------------------------------------------

def _compose(text: str, name: str) -> tuple[Any, dict[str, tuple[int, int]]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise MappingError(f"not valid YAML: {problem}", file=name, line=mark.line + 1 if mark else None,
                           column=mark.column + 1 if mark else None) from None
    if node is None:
        raise MappingError("the mapping is empty", file=name, line=1, column=1)
    positions: dict[str, tuple[int, int]] = {}
    return _to_python(node, "", positions, name), positions


def _to_python(node: yaml.Node, path: str, positions: dict[str, tuple[int, int]], name: str) -> Any:
    positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader("").construct_object(key_node)
            child = f"{path}.{key}" if path else str(key)
            if key in out:
                raise MappingError(f"duplicate key '{key}'", file=name, line=key_node.start_mark.line + 1,
                                   column=key_node.start_mark.column + 1, key=child)
            positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _to_python(value_node, child, positions, name)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, f"{path}[{i}]", positions, name) for i, item in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node)


# --- checking and building the model ------------------------------------------------------------------------

class _Builder:
    def __init__(self, document: Any, positions: dict[str, tuple[int, int]], name: str) -> None:
        self.doc = document
        self.positions = positions
        self.name = name

    # errors and positions

    def where(self, key: str) -> Where:
        probe = key
        while probe not in self.positions and probe:
            probe = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", probe)
        line, column = self.positions.get(probe, (1, 1))
        return Where(self.name, line, column, key)

    def error(self, key: str, message: str) -> MappingError:
        where = self.where(key)
        return MappingError(message, file=where.file, line=where.line, column=where.column, key=key or None)

    def mapping_at(self, key: str, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping of keys, got {_kind(value)}")
        return value

    def check_keys(self, key: str, value: dict[str, Any], allowed: tuple[str, ...] | list[str]) -> None:
        for name in value:
            if name not in allowed:
                close = difflib.get_close_matches(str(name), allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(allowed)})"
                raise self.error(_join(key, name), f"unknown key '{name}'{hint}")

    def regex(self, key: str, pattern: Any) -> str:
        if not isinstance(pattern, str) or not pattern:
            raise self.error(key, "expected a regular expression (a non-empty string)")
        try:
            pl.select(pl.lit("").str.contains(pattern))
        except Exception as error:  # polars raises ComputeError with the regex crate's explanation
            reason = str(error).split("This error occurred")[0].strip().replace("\n", " ")
            reason = re.sub(r"\s+", " ", reason)
            raise self.error(key, f"invalid regular expression {pattern!r}: {reason}") from None
        return pattern

    def regex_list(self, key: str, value: Any) -> list[str]:
        items = value if isinstance(value, list) else [value]
        return [self.regex(f"{key}[{i}]" if isinstance(value, list) else key, p) for i, p in enumerate(items)]

    def template(self, key: str, value: Any) -> Any:
        if isinstance(value, list):
            return [self.template(f"{key}[{i}]", v) for i, v in enumerate(value)]
        if isinstance(value, dict):
            raise self.error(key, "expected a template string, not a mapping")
        if isinstance(value, str):
            try:
                parse_template(value)
            except TemplateSyntaxError as error:
                raise self.error(key, f"bad template {value!r}: {error}") from None
        elif value is not None and not isinstance(value, (int, float, bool)):
            raise self.error(key, f"expected a template string, got {_kind(value)}")
        return value

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_kind(value)}")
        return value

    def status(self, key: str, value: Any) -> list[tuple[int, int]]:
        items = value if isinstance(value, list) else [value]
        ranges = []
        for i, item in enumerate(items):
            item_key = f"{key}[{i}]" if isinstance(value, list) else key
            if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
                ranges.append((item, item))
                continue
            text = str(item).strip().lower()
            if match := _STATUS_CLASS.match(text):
                base = int(match.group(1)) * 100
                ranges.append((base, base + 99))
            elif match := _STATUS_RANGE.match(text):
                low, high = int(match.group(1)), int(match.group(2))
                if low > high:
                    raise self.error(item_key, f"status range {item!r} is empty")
                ranges.append((low, high))
            else:
                raise self.error(item_key, f"bad status {item!r}: write a code (200), a class ('2xx') or a range ('200-299')")
        return ranges

    def methods(self, key: str, value: Any) -> list[str]:
        items = value if isinstance(value, list) else [value]
        return [self.string(key, m).upper() for m in items]

    def duration(self, key: str, value: Any) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
        match = _DURATION.match(str(value).strip()) if isinstance(value, str) else None
        if not match or not any(match.groups()):
            raise self.error(key, f"bad duration {value!r}: write e.g. 90s, 30m, 1h30m or a number of seconds")
        hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
        return hours * 3600 + minutes * 60 + seconds

    # sections

    def build(self) -> Mapping:
        doc = self.mapping_at("", self.doc)
        self.check_keys("", doc, TOP_KEYS)
        if "logmap" not in doc:
            raise self.error("", "missing 'logmap: 1' (the mapping language version) at the top")
        if doc["logmap"] != 1:
            raise self.error("logmap", f"unsupported mapping language version {doc['logmap']!r}; this logmap reads version 1")
        for required in ("source", "rules"):
            if required not in doc:
                raise self.error("", f"missing required section '{required}'")
        source = self.source(doc["source"])
        rules = self.rules(doc["rules"])
        return Mapping(
            version=1,
            source=source,
            rules=rules,
            filter=self.filter(doc.get("filter")),
            identity=self.identity(doc.get("identity")),
            context=self.context(doc.get("context")),
            durations=self.durations(doc.get("durations")),
            tests=self.tests(doc.get("tests")),
            name=doc.get("name"),
            description=doc.get("description"),
            path=self.name,
            raw=doc,
        )

    def source(self, value: Any) -> Source:
        spec = self.mapping_at("source", value)
        fmt = spec.get("format")
        known = [*defaults.ACCESS_LOG_FORMATS, *sorted(EXTRA_FORMATS)]
        if fmt is None:
            raise self.error("source", f"missing 'format' (one of: {', '.join(known)})")
        if fmt not in known:
            close = difflib.get_close_matches(str(fmt), known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise self.error("source.format", f"unknown format {fmt!r}; {hint}known formats: {', '.join(known)}")
        self.check_keys("source", spec, (*SOURCE_KEYS, *SOURCE_OPTION_KEYS.get(fmt, ())))
        pattern = spec.get("pattern")
        if fmt == "regex":
            if pattern is None:
                raise self.error("source", "format 'regex' needs a 'pattern' with named groups, e.g. (?P<ip>\\S+)")
            self.regex("source.pattern", pattern)
            if not named_groups(pattern):
                raise self.error("source.pattern", "the pattern has no named groups: name the fields, e.g. (?P<path>\\S+)")
        elif pattern is not None:
            raise self.error("source.pattern", f"'pattern' only applies to format 'regex', not {fmt!r}")
        timezone = spec.get("timezone", "UTC")
        try:
            zoneinfo.ZoneInfo(self.string("source.timezone", timezone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise self.error("source.timezone", f"unknown time zone {timezone!r}; use an IANA name like Europe/Paris") from None
        site = spec.get("site")
        if site is not None and not re.match(r"^https?://[^/\s]+", self.string("source.site", site)):
            raise self.error("source.site", f"site {site!r} must be an absolute URL like https://shop.example.com")
        options = {k: v for k, v in spec.items() if k not in SOURCE_KEYS}
        return Source(format=fmt, pattern=pattern, time_format=spec.get("time_format"), timezone=timezone,
                      site=site.rstrip("/") if site else None, options=options, where=self.where("source"))

    def filter(self, value: Any) -> Filter:
        spec = self.mapping_at("filter", value)
        self.check_keys("filter", spec, FILTER_KEYS)
        static = spec.get("exclude_static", True)
        if static is True:
            extensions = list(defaults.STATIC_EXTENSIONS)
        elif static is False:
            extensions = []
        elif isinstance(static, list):
            extensions = [self.string(f"filter.exclude_static[{i}]", e).lower().lstrip(".") for i, e in enumerate(static)]
        else:
            raise self.error("filter.exclude_static", "expected true, false or a list of extensions like [js, css]")
        exclude_bots = spec.get("exclude_bots", True)
        if not isinstance(exclude_bots, bool):
            raise self.error("filter.exclude_bots", "expected true or false")
        return Filter(
            status=self.status("filter.status", spec["status"]) if "status" in spec else list(defaults.STATUS),
            methods=self.methods("filter.methods", spec["methods"]) if "methods" in spec else list(defaults.METHODS),
            static_extensions=extensions,
            exclude_bots=exclude_bots,
            bot_patterns=self.regex_list("filter.bot_patterns", spec.get("bot_patterns", [])),
            include_paths=self.regex_list("filter.include_paths", spec.get("include_paths", [])),
            exclude_paths=self.regex_list("filter.exclude_paths", spec.get("exclude_paths", [])),
            where=self.where("filter"),
        )

    def rules(self, value: Any) -> list[Rule]:
        if not isinstance(value, list) or not value:
            raise self.error("rules", "expected a non-empty list of rules")
        return [self.rule(f"rules[{i}]", i, item) for i, item in enumerate(value)]

    def rule(self, key: str, index: int, value: Any) -> Rule:
        spec = self.mapping_at(key, value)
        type_name = spec.get("type")
        if type_name is None:
            raise self.error(key, "missing 'type' (the interaction type this rule produces)")
        if type_name not in INTERACTION_TYPES:
            close = difflib.get_close_matches(str(type_name), INTERACTION_TYPES, n=1, cutoff=0.4)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (one of: {', '.join(INTERACTION_TYPES)})"
            raise self.error(f"{key}.type", f"unknown interaction type {type_name!r}{hint}")
        allowed = RULE_FIELDS[type_name]
        for name in spec:
            if name in RULE_CONDITION_KEYS or name in allowed:
                continue
            if name in ALL_RULE_FIELDS:
                raise self.error(_join(key, name), f"field '{name}' is not allowed for type '{type_name}' "
                                                   f"(allowed: {', '.join(sorted(allowed))})")
            self.check_keys(key, {name: None}, [*RULE_CONDITION_KEYS, *sorted(allowed)])
        for required in REQUIRED_FIELDS[type_name]:
            if required not in spec:
                raise self.error(key, f"type '{type_name}' requires '{required}'")
        path = self.regex(f"{key}.path", spec["path"]) if "path" in spec else None
        query = {}
        for name, condition in self.mapping_at(f"{key}.query", spec.get("query")).items():
            query_key = f"{key}.query.{name}"
            if isinstance(condition, bool):
                query[str(name)] = QueryCondition(present=condition)
            elif isinstance(condition, str):
                query[str(name)] = QueryCondition(pattern=self.regex(query_key, condition))
            else:
                raise self.error(query_key, "expected true (present), false (absent) or a regex for the value")
        when = self.mapping_at(f"{key}.when", spec.get("when"))
        for column, expected in when.items():
            if isinstance(expected, dict):
                self.check_keys(f"{key}.when.{column}", expected, ("regex", "null", "not"))
                if "regex" in expected:
                    self.regex(f"{key}.when.{column}.regex", expected["regex"])
        fields: dict[str, Any] = {}
        field_where: dict[str, Where] = {"when": self.where(f"{key}.when")}
        for name in sorted(allowed & set(spec)):
            field_key = _join(key, name)
            field_where[name] = self.where(field_key)
            fields[name] = self.field(field_key, name, spec[name])
        return Rule(
            name=str(spec.get("name") or f"rule {index + 1}"),
            type=type_name,
            path=path,
            query=query,
            methods=self.methods(f"{key}.method", spec["method"]) if "method" in spec else [],
            status=self.status(f"{key}.status", spec["status"]) if "status" in spec else [],
            when=when,
            fields=fields,
            index=index,
            where=self.where(key),
            field_where=field_where,
        )

    def field(self, key: str, name: str, value: Any) -> Any:
        if name == "search":
            spec = self.mapping_at(key, value)
            self.check_keys(key, spec, ("keywords", "filters"))
            out: dict[str, Any] = {}
            if "keywords" in spec:
                out["keywords"] = self.template(f"{key}.keywords", spec["keywords"])
            filters = self.mapping_at(f"{key}.filters", spec.get("filters"))
            if filters:
                out["filters"] = {str(k): self.template(f"{key}.filters.{k}", v) for k, v in filters.items()}
            return out
        if name in {"revenue", "rating", "duration", "custom_action_name", "question_id", "result_type", "value",
                    "miso_id"} and isinstance(value, list):
            raise self.error(key, f"'{name}' takes one value, not a list")
        return self.template(key, value)

    def identity(self, value: Any) -> Identity:
        spec = self.mapping_at("identity", value)
        self.check_keys("identity", spec, IDENTITY_KEYS)
        user_id = spec.get("user_id")
        if user_id is not None:
            self.template("identity.user_id", user_id)
        anonymous: AnonymousId | None
        raw = spec.get("anonymous_id", "default")
        if raw == "default":
            anonymous = AnonymousId(hmac=list(defaults.ANONYMOUS_HMAC), key_env=defaults.ANONYMOUS_KEY_ENV)
        elif raw is None or raw is False:
            anonymous = None
        elif isinstance(raw, str):
            anonymous = AnonymousId(template=self.template("identity.anonymous_id", raw))
        else:
            hashed = self.mapping_at("identity.anonymous_id", raw)
            self.check_keys("identity.anonymous_id", hashed, ("hmac", "key"))
            parts = hashed.get("hmac")
            if not isinstance(parts, list) or not parts:
                raise self.error("identity.anonymous_id", "expected 'hmac: [templates…]', e.g. hmac: ['{ip}', '{user_agent}']")
            self.template("identity.anonymous_id.hmac", parts)
            key = hashed.get("key", f"env:{defaults.ANONYMOUS_KEY_ENV}")
            if key == "none" or key is None:
                anonymous = AnonymousId(hmac=parts, key_none=True)
            elif isinstance(key, str) and re.match(r"^env:[A-Za-z_][A-Za-z0-9_]*$", key):
                anonymous = AnonymousId(hmac=parts, key_env=key[4:])
            else:
                raise self.error("identity.anonymous_id.key",
                                 "expected 'env:VARIABLE' (the key is read from that environment variable) or 'none'; "
                                 "never write the key itself in a mapping")
        where_key = "identity.anonymous_id" if "identity.anonymous_id" in self.positions else "identity"
        return Identity(user_id=user_id, anonymous_id=anonymous, where=self.where(where_key))

    def context(self, value: Any) -> Context:
        spec = self.mapping_at("context", value)
        self.check_keys("context", spec, CONTEXT_KEYS)
        context = Context(where=self.where("context"))
        if "page" in spec:
            page = spec["page"]
            if page is False or page is None:
                context.page_url = context.page_referrer = context.page_title = None
            else:
                page = self.mapping_at("context.page", page)
                self.check_keys("context.page", page, ("url", "referrer", "title"))
                context.page_url = self._optional_template("context.page.url", page.get("url"))
                context.page_referrer = self._optional_template("context.page.referrer", page.get("referrer"))
                context.page_title = self._optional_template("context.page.title", page.get("title"))
        for name in ("user_agent", "truncated_ip", "locale", "region"):
            if name in spec:
                setattr(context, name, self._optional_template(f"context.{name}", spec[name]))
        if "campaign" in spec:
            campaign = spec["campaign"]
            if campaign in (False, None):
                context.campaign = None
            elif campaign == "utm":
                context.campaign = "utm"
            else:
                campaign = self.mapping_at("context.campaign", campaign)
                self.check_keys("context.campaign", campaign, ("name", "source", "medium", "term", "content"))
                context.campaign = {k: self.template(f"context.campaign.{k}", v) for k, v in campaign.items()}
        custom = self.mapping_at("context.custom_context", spec.get("custom_context"))
        context.custom_context = {str(k): self.template(f"context.custom_context.{k}", v) for k, v in custom.items()}
        return context

    def _optional_template(self, key: str, value: Any) -> str | None:
        if value is False or value is None:
            return None
        return self.template(key, self.string(key, value))

    def durations(self, value: Any) -> Durations:
        spec = self.mapping_at("durations", value)
        self.check_keys("durations", spec, DURATION_KEYS)
        source = spec.get("from", "next_event")
        if source not in ("next_event", "none"):
            self.template("durations.from", self.string("durations.from", source))
        return Durations(
            source=source,
            session_timeout_s=self.duration("durations.session_timeout", spec.get("session_timeout", "30m")),
            max_s=self.duration("durations.max", spec.get("max", "30m")),
            where=self.where("durations"),
        )

    def tests(self, value: Any) -> list[TestCase]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error("tests", "expected a list of test cases")
        cases = []
        for i, item in enumerate(value):
            key = f"tests[{i}]"
            spec = self.mapping_at(key, item)
            self.check_keys(key, spec, TEST_KEYS)
            if "expect" not in spec:
                raise self.error(key, "a test case needs 'expect'")
            lines = [spec["line"]] if "line" in spec else list(spec.get("lines", []))
            rows = [spec["row"]] if "row" in spec else list(spec.get("rows", []))
            if not lines and not rows:
                raise self.error(key, "a test case needs 'line', 'lines', 'row' or 'rows'")
            cases.append(TestCase(name=str(spec.get("name") or f"test {i + 1}"), lines=[str(x) for x in lines],
                                  rows=rows, expect=spec["expect"], where=self.where(key)))
        return cases


def _join(key: str, name: Any) -> str:
    return f"{key}.{name}" if key else str(name)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)
