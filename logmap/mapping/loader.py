"""Load a mapping file: YAML → checked, typed :class:`~logmap.mapping.model.Mapping`.

Three passes, each stopping at the first problem with ``file:line:column: key: sentence``:

1. YAML with positions (`positions.py`);
2. the JSON Schema (`mapping.schema.json`, the same file editors use), for shapes, unknown keys and the fields each
   interaction type allows (`schema.py`);
3. what a schema cannot express (this module): regexes compiled by polars' engine, template syntax, named groups
   of a `regex` source, statuses, durations, time zones, the anonymous-id key reference — then the model is
   filled with the defaults of docs/mapping.md (`defaults.py`).

Everything happens before any input is read, so a typo costs seconds, not a half-finished run.
"""

from __future__ import annotations

import codecs
import re
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

from logmap.errors import MappingError
from logmap.mapping import defaults
from logmap.mapping.model import (
    AnonymousId,
    Context,
    Dedupe,
    Durations,
    Filter,
    Identity,
    KeyedHash,
    Mapping,
    Pings,
    QueryCondition,
    Reference,
    Rule,
    Source,
    TestCase,
    Where,
)
from logmap.mapping.positions import Located, join_path, load_located
from logmap.mapping.schema import schema_path, unknown_key_message, validate_document
from logmap.mapping.templates import TemplateSyntaxError, as_reference, parse_template
from logmap.mapping.values import named_groups, parse_duration, parse_status, regex_error
from logmap.records.types import REQUIRED_FIELDS, RULE_FIELDS

__all__ = [
    "EXTRA_FORMATS", "known_formats", "load_mapping", "load_mapping_text", "named_groups",
    "register_format", "anonymous_key", "hash_key", "key_variable", "schema_path", "SourceCheck",
]

#: Formats besides the access-log presets, registered by the source modules that read them.
EXTRA_FORMATS: set[str] = set()

_ENV_KEY = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


def register_format(name: str) -> None:
    """Declare a source format implemented elsewhere (an export reader), so mappings may name it."""
    EXTRA_FORMATS.add(name)


def known_formats() -> list[str]:
    """Every format a mapping may name: the access-log presets, the exports, then registered formats."""
    return [*defaults.FORMATS, *sorted(EXTRA_FORMATS - set(defaults.FORMATS))]


#: How a source reports problems with its own settings (a format string that does not compile, unknown export
#: options): (key under ``source``, message) pairs. The sources layer passes one in; the loader, which knows
#: where each key is written, turns the first into a positioned MappingError.
SourceCheck = Callable[[Source], list[tuple[str, str]]]


def load_mapping(path: str | Path, *, source_check: SourceCheck | None = None) -> Mapping:
    """Read and check a mapping file; MappingError (with file:line:column and key) for any problem.

    ``source_check`` adds the source's own checks (``logmap.sources.load_mapping`` passes them).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError("mapping file not found", file=str(path)) from None
    except IsADirectoryError:
        raise MappingError("is a directory, not a mapping file", file=str(path)) from None
    except UnicodeDecodeError as error:
        raise MappingError(f"the mapping is not UTF-8 text ({error.reason} at byte {error.start})",
                           file=str(path)) from None
    except OSError as error:
        raise MappingError(f"cannot read the mapping: {error.strerror}", file=str(path)) from None
    return load_mapping_text(text, str(path), source_check=source_check)


def load_mapping_text(text: str, name: str = "<mapping>", *, source_check: SourceCheck | None = None) -> Mapping:
    """Check a mapping given as YAML text; ``name`` stands for the file in error messages."""
    located = load_located(text, name)
    validate_document(located, name)
    return _Builder(located, name, source_check).build()


def key_variable(mapping: Mapping) -> str | None:
    """The environment variable the mapping names for the run's hash key (``key: env:NAME`` of ``anonymous_id``,
    or of a hashed ``user_id``), when it needs one. Only the CLI reads it; library callers pass the key itself."""
    for spec in mapping.identity.keyed_hashes().values():
        if not spec.key_none and spec.key_env:
            return spec.key_env
    return None


def anonymous_key(mapping: Mapping, key: str | bytes | None) -> bytes | None:
    """The HMAC key of ``anonymous_id`` (see `hash_key`)."""
    return hash_key(mapping, key, "anonymous_id")


def hash_key(mapping: Mapping, key: str | bytes | None, field: str) -> bytes | None:
    """The HMAC key of the identity field ``field`` (``anonymous_id``, or ``user_id`` written as a keyed hash):
    ``key`` (the run's key) as bytes, or None when that field needs no key (``key: none``, a plain template,
    or no such hash).

    Raises MappingError at the position of ``key`` when one is needed and ``key`` is None or empty. The key's
    value never appears in a message.
    """
    spec = mapping.identity.keyed_hashes().get(field)
    if spec is None or spec.key_none or not spec.key_env:
        return None
    if key:
        return key.encode("utf-8") if isinstance(key, str) else key
    name = spec.key_env
    what = "anonymous-id" if field == "anonymous_id" else field.replace("_", "-")
    where = spec.where or mapping.identity.where
    message = (f"environment variable {name} is not set or empty: it must hold the secret key of the "
               f"{what} hash (export {name}=<a long random secret>, and keep it to re-run later; a library "
               f"caller passes key=...), or write 'key: none' for an unkeyed hash (reversible for IPv4 addresses)")
    if where is None:
        raise MappingError(message, file=mapping.path, key=f"identity.{field}.key")
    raise MappingError(message, file=where.file, line=where.line, column=where.column, key=f"identity.{field}.key")


def _search_keys(spec: dict[str, Any]) -> list[str]:
    """``keywords`` and ``filters.<name>`` of a rule's ``search`` field, each positioned on its own."""
    search = spec.get("search")
    if not isinstance(search, dict):
        return []
    filters = search.get("filters")
    return [*(["keywords"] if "keywords" in search else []),
            *[f"filters.{name}" for name in (filters if isinstance(filters, dict) else {})]]


class _Builder:
    """Semantic checks and model filling; the document already conforms to the JSON Schema."""

    def __init__(self, located: Located, name: str, source_check: SourceCheck | None = None) -> None:
        self.doc: dict[str, Any] = located.value
        self.located = located
        self.name = name
        self.source_check = source_check
        self.references: list[Reference] = []

    # positions and errors

    def value_where(self, key: str) -> Where:
        """Where the value of ``key`` starts (a template's problems are reported there)."""
        line, column = self.located.value_position(key)
        return Where(self.name, line, column, key)

    def where(self, key: str) -> Where:
        line, column = self.located.position(key)
        return Where(self.name, line, column, key)

    def error(self, key: str, message: str, *, at_key: bool = False) -> MappingError:
        """A MappingError at the value of ``key`` (what is wrong), or at the key itself."""
        line, column = self.located.position(key) if at_key else self.located.value_position(key)
        return MappingError(message, file=self.name, line=line, column=column, key=key or None)

    # values

    def regex(self, key: str, pattern: str, rule: str | None = None) -> str:
        reason = regex_error(pattern)
        if reason is not None:
            owner = f" in rule '{rule}'" if rule else ""
            raise self.error(key, f"invalid regular expression {pattern!r}{owner}: {reason}")
        return pattern

    def regexes(self, key: str, value: str | list[str] | None, rule: str | None = None) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return [self.regex(key, value, rule)]
        return [self.regex(join_path(key, i), p, rule) for i, p in enumerate(value)]

    def template(self, key: str, value: Any, rule_index: int | None = None) -> Any:
        """Check template syntax (recursing into lists and mappings) and record the names it refers to."""
        if isinstance(value, list):
            return [self.template(join_path(key, i), v, rule_index) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.template(join_path(key, k), v, rule_index) for k, v in value.items()}
        if isinstance(value, str):
            try:
                parsed = parse_template(value)
            except TemplateSyntaxError as error:
                raise self.error(key, f"bad template {value!r}: {error}") from None
            where = self.where(key)
            self.references.extend(Reference(choice.name, where, rule_index, choice.optional)
                                   for ref in parsed.refs for choice in ref.choices)
        return value

    def optional_template(self, key: str, value: Any, default: str | None) -> str | None:
        """A template, ``false`` (left out), or the default when the key is not written."""
        if value is None:
            return default
        if value is False:
            return None
        return self.template(key, value)

    def status(self, key: str, value: int | str | list[int | str]) -> list[tuple[int, int]]:
        items = value if isinstance(value, list) else [value]
        ranges = []
        for i, item in enumerate(items):
            try:
                ranges.append(parse_status(item))
            except ValueError as error:
                raise self.error(join_path(key, i) if isinstance(value, list) else key, str(error)) from None
        return ranges

    def duration(self, key: str, value: Any, default: str) -> float:
        try:
            seconds = parse_duration(default if value is None else value)
        except ValueError as error:
            raise self.error(key, str(error)) from None
        if seconds <= 0:
            raise self.error(key, f"duration {value!r} must be longer than zero")
        return seconds

    @staticmethod
    def methods(value: str | list[str]) -> list[str]:
        return [m.upper() for m in (value if isinstance(value, list) else [value])]

    # sections

    def build(self) -> Mapping:
        doc = self.doc
        mapping = Mapping(
            version=doc["logmap"],
            source=self.source(doc["source"]),
            rules=[self.rule(i, spec) for i, spec in enumerate(doc["rules"])],
            filter=self.filter(doc.get("filter") or {}),
            identity=self.identity(doc.get("identity") or {}),
            context=self.context(doc.get("context") or {}),
            durations=self.durations(doc.get("durations") or {}),
            tests=self.tests(doc.get("tests") or []),
            dedupe=self.dedupe(doc.get("dedupe")),
            name=doc.get("name"),
            description=doc.get("description"),
            path=self.name,
            raw=doc,
        )
        mapping.references = self.references
        return mapping

    def source(self, spec: dict[str, Any]) -> Source:
        fmt = spec["format"]
        known = known_formats()
        if fmt not in known:
            raise self.error("source.format", unknown_key_message(fmt, known, what="format"))
        pattern = spec.get("pattern")
        if fmt == "regex":
            if pattern is None:
                raise self.error("source", "format 'regex' needs a 'pattern' with named groups, "
                                           "e.g. '^(?P<ip>\\S+) .*\"(?P<request>[^\"]*)\"'")
            self.regex("source.pattern", pattern)
            if not named_groups(pattern):
                raise self.error("source.pattern", "the pattern has no named groups: name the fields it captures, "
                                                   "e.g. (?P<path>\\S+)")
        elif fmt in ("nginx", "apache"):  # the server's format string, compiled to a regex by the source check
            if pattern is None:
                raise self.error("source", f"format '{fmt}' needs a 'pattern': the server's log format string, "
                                           "e.g. '$remote_addr - $remote_user [$time_local] \"$request\" …'")
        elif pattern is not None:
            raise self.error("source.pattern", f"'pattern' applies to format 'regex' only, not '{fmt}'", at_key=True)
        time_format = spec.get("time_format")
        if time_format is not None and fmt != "regex":
            hint = ("use options: {time: {column, format}}" if fmt in defaults.EXPORT_FORMATS
                    else "its lines say how time is written")
            raise self.error("source.time_format", f"'time_format' applies to format 'regex' only ('{fmt}': {hint})",
                             at_key=True)
        options = dict(spec.get("options") or {})
        if time_format is None and fmt == "regex":
            time_format = defaults.TIME_FORMAT
        timezone = spec.get("timezone", defaults.TIMEZONE)
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise self.error("source.timezone", f"unknown time zone {timezone!r}: use an IANA name like UTC or "
                                                "Europe/Paris") from None
        encoding = spec.get("encoding")
        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise self.error("source.encoding", f"unknown encoding {encoding!r}: use a Python codec name such as "
                                                    "latin-1, cp1252, shift_jis, big5 or gb18030") from None
        prefix = spec.get("prefix")
        if prefix is not None:
            self.regex("source.prefix", prefix)
        fields = dict(spec.get("fields") or {})
        if fields and fmt not in defaults.W3C_FORMATS + defaults.JSON_FORMATS + ("auto",):
            raise self.error("source.fields", f"'fields' renames W3C or JSON fields, not those of '{fmt}'", at_key=True)
        captures = list(spec.get("captures") or [])
        if captures and fmt not in ("haproxy", "auto"):
            raise self.error("source.captures", f"'captures' names HAProxy's captured headers, not '{fmt}' fields",
                             at_key=True)
        source = Source(format=fmt, pattern=pattern, time_format=time_format, timezone=timezone,
                        site=spec.get("site"), options=options, fields=fields, encoding=encoding, prefix=prefix,
                        captures=captures, where=self.where("source"))
        for problem_key, message in (self.source_check(source) if self.source_check else []):
            raise self.error(problem_key, message)
        return source

    def filter(self, spec: dict[str, Any]) -> Filter:
        static = spec.get("exclude_static", True)
        if static is True:
            extensions = list(defaults.STATIC_EXTENSIONS)
        elif static is False:
            extensions = []
        else:
            extensions = [e.lower().lstrip(".") for e in static]
        return Filter(
            status=self.status("filter.status", spec["status"]) if "status" in spec else list(defaults.STATUS),
            methods=self.methods(spec["methods"]) if "methods" in spec else list(defaults.METHODS),
            static_extensions=extensions,
            exclude_bots=spec.get("exclude_bots", defaults.EXCLUDE_BOTS),
            exclude_empty_user_agents=spec.get("exclude_empty_user_agents", self.empty_user_agents_default()),
            bot_patterns=self.regexes("filter.bot_patterns", spec.get("bot_patterns")),
            include_paths=self.regexes("filter.include_paths", spec.get("include_paths")),
            exclude_paths=self.regexes("filter.exclude_paths", spec.get("exclude_paths")),
            drop=self.drop_conditions(spec.get("drop") or {}),
            where=self.where("filter"),
            written={k: self.where(f"filter.{k}") for k in spec},
        )

    def empty_user_agents_default(self) -> bool:
        """Access logs: an empty user agent is a bot by default. Exports: never by default (server-side events
        carry none and are people's actions)."""
        source = self.doc.get("source") or {}
        export = defaults.is_export_format(str(source.get("format")), source.get("options"))
        return defaults.EXCLUDE_EMPTY_USER_AGENTS and not export

    def drop_conditions(self, spec: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """``filter.drop``: reason → column conditions, checked like a rule's ``when:``."""
        for reason, when in spec.items():
            key = f"filter.drop.{reason}"
            for column, condition in when.items():
                self.when_column(f"{key}.{column}", column, condition, key, None)
        return spec

    def when_column(self, key: str, column: str, condition: Any, owner: str, rule_index: int | None) -> None:
        """One ``when:`` entry: its key is a reference (``a?``, ``a|or:b``); record every name it reads."""
        self.template(key, as_reference(column), rule_index)
        self.when_condition(key, condition, owner)

    def rule(self, index: int, spec: dict[str, Any]) -> Rule:
        key = join_path("rules", index)
        name = spec.get("name") or f"rule {index + 1}"
        type_name = spec["type"]
        for required in sorted(REQUIRED_FIELDS[type_name]):  # also in the schema; kept for a precise sentence
            if required not in spec:
                raise self.error(key, f"type '{type_name}' requires '{required}'")
        path = self.regex(f"{key}.path", spec["path"], name) if "path" in spec else None
        query = {}
        for param, condition in (spec.get("query") or {}).items():
            if isinstance(condition, bool):
                query[param] = QueryCondition(present=condition)
            else:
                query[param] = QueryCondition(pattern=self.regex(f"{key}.query.{param}", condition, name))
        when = spec.get("when") or {}
        for column, condition in when.items():
            self.when_column(f"{key}.when.{column}", column, condition, name, index)
        fields = {}
        for field_name in sorted(RULE_FIELDS[type_name] & set(spec)):
            fields[field_name] = self.template(join_path(key, field_name), spec[field_name], index)
        return Rule(
            name=name,
            type=type_name,
            path=path,
            query=query,
            methods=self.methods(spec["method"]) if "method" in spec else [],
            status=self.status(f"{key}.status", spec["status"]) if "status" in spec else [],
            when=when,
            fields=fields,
            index=index,
            where=self.where(key),
            field_where={**{k: self.where(join_path(key, k)) for k in spec},
                         **{f"search.{k}": self.value_where(f"{key}.search.{k}") for k in _search_keys(spec)}},
            groups=named_groups(path),
        )

    def when_condition(self, key: str, condition: Any, rule: str) -> None:
        if isinstance(condition, dict):
            if "regex" in condition:
                self.regex(f"{key}.regex", condition["regex"], rule)
            if "not" in condition:
                self.when_condition(f"{key}.not", condition["not"], rule)

    def identity(self, spec: dict[str, Any]) -> Identity:
        raw_user = spec.get("user_id")
        user_hash = self.keyed_hash("identity.user_id", raw_user) if isinstance(raw_user, dict) else None
        user_id = None if user_hash else self.optional_template("identity.user_id", raw_user, None)
        raw = spec.get("anonymous_id")
        key_path = "identity.anonymous_id.key"
        anonymous: AnonymousId | None
        if raw is None:  # not written: the documented default, a keyed hash of ip and user agent
            hmac = list(defaults.ANONYMOUS_HMAC)
            self.template("identity.anonymous_id", hmac)
            anonymous = AnonymousId(hmac=hmac, key_env=defaults.ANONYMOUS_KEY_ENV, where=self.where(key_path))
        elif raw is False:
            anonymous = None
        elif isinstance(raw, str):
            anonymous = AnonymousId(template=self.template("identity.anonymous_id", raw))
        else:
            anonymous = self.keyed_hash("identity.anonymous_id", raw)
        if user_hash is not None and anonymous is not None and anonymous.key_env and user_hash.key_env \
                and anonymous.key_env != user_hash.key_env:
            raise self.error("identity.user_id.key", f"one run has one hash key: write key: env:{anonymous.key_env} "
                                                     "here too (or none)")
        user_key = "user_id.hmac" if user_hash is not None else "user_id"
        template_key = "anonymous_id.hmac" if isinstance(raw, dict) else "anonymous_id"
        return Identity(user_id=user_id, anonymous_id=anonymous, where=self.where("identity"),
                        field_where={"user_id": self.value_where(f"identity.{user_key}"),
                                     "anonymous_id": self.value_where(f"identity.{template_key}")},
                        user_id_hash=user_hash)

    def keyed_hash(self, key: str, raw: dict[str, Any]) -> KeyedHash:
        """``{hmac: [templates], key: env:NAME | none}`` of an identity field."""
        hmac = self.template(f"{key}.hmac", raw["hmac"])
        key_path = f"{key}.key"
        secret = raw.get("key", f"env:{defaults.ANONYMOUS_KEY_ENV}")
        if secret == "none":
            return KeyedHash(hmac=hmac, key_none=True, where=self.where(key_path))
        if match := _ENV_KEY.match(secret):
            return KeyedHash(hmac=hmac, key_env=match.group(1), where=self.where(key_path))
        # the schema's pattern already rejects this; never echo what may be a secret
        raise self.error(key_path, "expected env:VARIABLE or none; never write the key itself in a mapping")

    def context(self, spec: dict[str, Any]) -> Context:
        context = Context(where=self.where("context"))
        page = spec.get("page")
        if page is False:
            context.page_url = context.page_referrer = context.page_title = None
        elif page is not None:  # a written `page` replaces the default as a whole: what it leaves out is absent
            context.page_url = self.optional_template("context.page.url", page.get("url"), None)
            context.page_referrer = self.optional_template("context.page.referrer", page.get("referrer"), None)
            context.page_title = self.optional_template("context.page.title", page.get("title"), None)
        else:
            self.template("context.page.url", context.page_url)
            self.template("context.page.referrer", context.page_referrer)
        context.user_agent = self.optional_template("context.user_agent", spec.get("user_agent"), defaults.USER_AGENT)
        context.truncated_ip = self.optional_template("context.truncated_ip", spec.get("truncated_ip"),
                                                      defaults.TRUNCATED_IP)
        context.locale = self.optional_template("context.locale", spec.get("locale"), None)
        context.region = self.optional_template("context.region", spec.get("region"), None)
        campaign = spec.get("campaign", defaults.CAMPAIGN)
        if campaign is False:
            context.campaign = None
        elif isinstance(campaign, dict):
            context.campaign = {k: v for k, v in self.template("context.campaign", campaign).items() if v is not False}
        else:
            context.campaign = campaign
        context.custom_context = self.template("context.custom_context", dict(spec.get("custom_context") or {}))
        names = ["page.url", "page.referrer", "page.title", "user_agent", "truncated_ip", "locale", "region",
                 *[f"campaign.{k}" for k in (context.campaign if isinstance(context.campaign, dict) else {})],
                 *[f"custom_context.{k}" for k in context.custom_context]]
        context.field_where = {name: self.value_where(f"context.{name}") for name in names}
        return context

    def durations(self, spec: dict[str, Any]) -> Durations:
        source = spec.get("from", defaults.DURATIONS_FROM)
        if source not in defaults.DURATION_METHODS:
            self.template("durations.from", source)
        elif "unit" in spec:
            raise self.error("durations.unit", f"'unit' applies when 'from' names a column, not with '{source}'",
                             at_key=True)
        if source == "pings" and "pings" not in spec:
            raise self.error("durations.from", "'from: pings' needs 'pings: {page: <template of the page view id>}' "
                                               "to tell which page view each ping belongs to")
        if source != "pings" and "pings" in spec:
            raise self.error("durations.pings", f"'pings' applies with 'from: pings', not with '{source}'",
                             at_key=True)
        return Durations(
            source=source,
            unit=spec.get("unit", defaults.DURATION_UNIT),
            session_timeout_s=self.duration("durations.session_timeout", spec.get("session_timeout"),
                                            defaults.SESSION_TIMEOUT),
            max_s=self.duration("durations.max", spec.get("max"), defaults.MAX_DURATION),
            where=self.where("durations"),
            pings=self.pings(spec["pings"]) if source == "pings" else None,
        )

    def pings(self, spec: dict[str, Any]) -> Pings:
        """``durations.pings``: which rows are pings (a ``when:``), which page view each row belongs to."""
        key = "durations.pings"
        when = spec.get("when", defaults.PING_WHEN)
        for column, condition in when.items():
            self.when_column(f"{key}.when.{column}", column, condition, key, None)
        return Pings(
            page=self.template(f"{key}.page", spec["page"]),
            when=dict(when),
            heartbeat_s=self.duration(f"{key}.heartbeat", spec.get("heartbeat"), defaults.HEARTBEAT),
            min_visit_s=self.duration(f"{key}.min_visit", spec.get("min_visit"), defaults.MIN_VISIT),
            where=self.value_where(f"{key}.page"),
            when_where=self.where(f"{key}.when" if "when" in spec else key),
        )

    def dedupe(self, spec: dict[str, Any] | None) -> Dedupe | None:
        if spec is None:
            return None
        for index, name in enumerate(spec["by"]):   # references, like `when:` keys: `a?`, `a|or:b`
            self.template(join_path("dedupe.by", index), as_reference(name))
        return Dedupe(by=list(spec["by"]), where=self.where("dedupe.by"))

    def tests(self, items: list[dict[str, Any]]) -> list[TestCase]:
        cases = []
        for i, spec in enumerate(items):
            key = join_path("tests", i)
            lines = [spec["line"]] if "line" in spec else list(spec.get("lines", []))
            rows = [spec["row"]] if "row" in spec else list(spec.get("rows", []))
            if not lines and not rows:
                raise self.error(key, "a test case needs its input: 'line', 'lines', 'row' or 'rows'")
            if lines and rows:
                raise self.error(key, "a test case takes lines or rows, not both")
            cases.append(TestCase(name=spec.get("name") or f"test {i + 1}", lines=lines, rows=rows,
                                  expect=spec["expect"], where=self.where(key)))
        return cases
