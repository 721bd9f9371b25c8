"""The typed model of a mapping file (language v1).

``logmap.mapping.loader.load_mapping`` turns YAML into these objects after checking it against the JSON Schema
and the spec; every other module reads mappings only through this model. Each object keeps ``where``: the
position of its YAML node, so that errors found later (a regex polars cannot compile, say) can still name the
file, line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from logmap.mapping import defaults

# A template value as written in YAML: a string template ('{query.q|lower}'), a literal number/bool,
# or for list fields a list of those.
TemplateValue = str | int | float | bool
FieldValue = TemplateValue | list[TemplateValue] | dict[str, Any]


@dataclass(frozen=True)
class Where:
    """A position in a mapping file, 1-based."""

    file: str
    line: int
    column: int
    key: str  # the key path, e.g. "rules[2].path"


@dataclass(frozen=True)
class Reference:
    """One name a template (or a `when` condition) refers to, and where: kept so that a later step, which knows
    the source's fields, can report a name that resolves to nothing (the loader cannot: fields depend on the
    source)."""

    name: str                     # as written: 'product_id', 'query.q', 'items[].item_id'
    where: Where                  # the key that holds the template
    rule_index: int | None = None  # the rule it belongs to (its `path` groups are in scope), None outside rules
    optional: bool = False        # written `name?`: absent from the input means null


@dataclass
class Source:
    format: str = "combined"
    pattern: str | None = None          # regex format only
    time_format: str | None = None      # strptime format of the `time` field
    timezone: str = defaults.TIMEZONE
    site: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # format-specific extras (later formats)
    fields: dict[str, str] = field(default_factory=dict)   # W3C/JSON field name → canonical column
    encoding: str | None = None        # input codec when not UTF-8 (any Python codec name)
    prefix: str | None = None          # regex stripped from the start of each line before parsing
    captures: list[str] = field(default_factory=list)      # haproxy: what each captured request header is
    where: Where | None = None

    @property
    def is_export(self) -> bool:
        """An analytics export (Parquet, NDJSON, CSV, or `auto` with options), not an access log."""
        from logmap.mapping.defaults import is_export_format

        return is_export_format(self.format, self.options)


@dataclass
class Filter:
    status: list[tuple[int, int]] = field(default_factory=list)   # inclusive ranges; empty = keep all
    methods: list[str] = field(default_factory=list)              # upper-case; empty = keep all
    static_extensions: list[str] = field(default_factory=list)    # lower-case, no dot; empty = keep all
    exclude_bots: bool = defaults.EXCLUDE_BOTS
    exclude_empty_user_agents: bool = defaults.EXCLUDE_EMPTY_USER_AGENTS
    bot_patterns: list[str] = field(default_factory=list)
    include_paths: list[str] = field(default_factory=list)
    exclude_paths: list[str] = field(default_factory=list)
    #: exports: reason → column conditions (as in a rule's `when:`); a row meeting all of them is dropped as
    #: `filtered:<reason>` (Adobe's excluded hits, data-source rows)
    drop: dict[str, dict[str, Any]] = field(default_factory=dict)
    where: Where | None = None
    written: dict[str, Where] = field(default_factory=dict, compare=False)  # keys written → position


@dataclass
class QueryCondition:
    present: bool | None = None   # True: must be present, False: must be absent
    pattern: str | None = None    # regex searched in the decoded value


@dataclass
class Rule:
    name: str
    type: str
    path: str | None = None
    query: dict[str, QueryCondition] = field(default_factory=dict)
    methods: list[str] = field(default_factory=list)
    status: list[tuple[int, int]] = field(default_factory=list)
    when: dict[str, Any] = field(default_factory=dict)       # column conditions (exports)
    fields: dict[str, FieldValue] = field(default_factory=dict)  # type-specific fields as written
    index: int = 0
    where: Where | None = None
    field_where: dict[str, Where] = field(default_factory=dict)  # every key written in the rule → its position
    groups: list[str] = field(default_factory=list)            # named groups of `path`, in order


@dataclass
class AnonymousId:
    template: str | None = None                 # plain template, e.g. a cookie column
    hmac: list[str] = field(default_factory=list)
    key_env: str | None = None                  # name of the environment variable holding the key
    key_none: bool = False                      # `key: none`: plain SHA-256, with a warning
    where: Where | None = None                  # position of `key` (or of the nearest written ancestor)


#: `AnonymousId`'s hash part serves any identity field: ``user_id: {hmac: ['{email}']}``.
KeyedHash = AnonymousId


@dataclass
class Identity:
    user_id: str | None = None
    anonymous_id: AnonymousId | None = None
    where: Where | None = None
    #: ``user_id: {hmac: [...], key: ...}``: the user id is a keyed hash of these templates (then `user_id` is None)
    user_id_hash: KeyedHash | None = None

    def keyed_hashes(self) -> dict[str, KeyedHash]:
        """Identity field → its hash spec, for the fields written as ``{hmac: [...]}``."""
        hashes = {"user_id": self.user_id_hash, "anonymous_id": self.anonymous_id}
        return {name: spec for name, spec in hashes.items() if spec is not None and spec.hmac}
    field_where: dict[str, Where] = field(default_factory=dict)  # "user_id", "anonymous_id" → its template

    def where_of(self, name: str) -> Where | None:
        return self.field_where.get(name, self.where)


@dataclass
class Context:
    page_url: str | None = defaults.PAGE_URL
    page_referrer: str | None = defaults.PAGE_REFERRER
    page_title: str | None = None
    user_agent: str | None = defaults.USER_AGENT
    truncated_ip: str | None = defaults.TRUNCATED_IP
    campaign: Literal["utm"] | dict[str, str] | None = defaults.CAMPAIGN  # type: ignore[assignment]
    locale: str | None = None
    region: str | None = None
    custom_context: dict[str, TemplateValue] = field(default_factory=dict)
    where: Where | None = None
    field_where: dict[str, Where] = field(default_factory=dict)  # "page.url", "custom_context.x" … → template

    def where_of(self, name: str) -> Where | None:
        return self.field_where.get(name, self.where)


@dataclass
class Pings:
    """``durations.pings`` (with ``from: pings``): rows meeting ``when`` are a page's heartbeats, not records.

    The records and pings whose ``page`` (a page view id) and visitor are equal belong to one page view; its
    engaged time is ``heartbeat`` x (distinct heartbeat windows with a ping - 1) + ``min_visit``.
    """

    page: str                                   # template of the page view id
    when: dict[str, Any] = field(default_factory=lambda: dict(defaults.PING_WHEN))
    heartbeat_s: float = defaults.HEARTBEAT_S
    min_visit_s: float = defaults.MIN_VISIT_S
    where: Where | None = None                  # of `page`
    when_where: Where | None = None             # of `when` (of `pings` when the default applies)


@dataclass
class Durations:
    source: str = defaults.DURATIONS_FROM  # one of DURATION_METHODS, or a template naming a field (exports)
    unit: str = defaults.DURATION_UNIT    # unit of the field `source` names: s, ms or us
    session_timeout_s: float = defaults.SESSION_TIMEOUT_S
    max_s: float = defaults.MAX_DURATION_S
    where: Where | None = None
    pings: Pings | None = None             # with source 'pings'


@dataclass
class Dedupe:
    """``dedupe: {by: [...]}``: later rows with the key of an earlier row are dropped as ``duplicate``."""

    by: list[str]
    where: Where | None = None


@dataclass
class TestCase:
    __test__ = False  # a mapping's test case, not a pytest class

    name: str
    lines: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    expect: Any = None
    where: Where | None = None


@dataclass
class Mapping:
    version: int
    source: Source
    rules: list[Rule]
    filter: Filter = field(default_factory=Filter)
    identity: Identity = field(default_factory=Identity)
    context: Context = field(default_factory=Context)
    durations: Durations = field(default_factory=Durations)
    tests: list[TestCase] = field(default_factory=list)
    name: str | None = None
    description: str | None = None
    path: str = "<mapping>"
    raw: dict[str, Any] = field(default_factory=dict)   # the YAML document as loaded
    references: list[Reference] = field(default_factory=list)  # every template reference, in document order
    dedupe: Dedupe | None = None
