"""Builds ``mapping.schema.json``, the JSON Schema (draft 2020-12) of mapping files.

The schema is generated rather than hand-written because its per-type part (which fields each of the 29
interaction types allows) must follow the vendored API schema (`logmap.records.types`); a test checks that the
shipped file equals ``build_schema()``. After changing this module, regenerate with::

    python -m logmap.mapping.schema_build > logmap/mapping/mapping.schema.json

Editors (yaml-language-server) show the ``description`` of each key, complete ``enum`` values and flag keys the
schema does not allow; the loader validates with the same file and turns the first error into a MappingError.
``errorMessage`` is a non-standard keyword that VS Code-style editors show instead of a generic message;
``x-message`` is the loader's version of it, where ``{value}`` stands for the offending value.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from logmap.mapping import defaults
from logmap.records.types import INTERACTION_TYPES, REQUIRED_FIELDS, RULE_FIELDS

DURATION_PATTERN = r"^(?=\d)(\d+(\.\d+)?h)?(\d+(\.\d+)?m)?(\d+(\.\d+)?s)?$"
STATUS_PATTERN = r"^([1-5]xx|[1-5]\d\d\s*-\s*[1-5]\d\d)$"
ENV_KEY_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|none)$"
_SEGMENT = r"[A-Za-z_$][A-Za-z0-9_$\-]*(\[\])?"
#: a column reference written without braces (a `when:` key, a `dedupe.by` entry): a column path ('?': it may
#: be absent), or alternatives tried in order (`a.type?|or:b.type?`)
COLUMN_REF_PATTERN = rf"^{_SEGMENT}(\.{_SEGMENT})*\??(\|or:{_SEGMENT}(\.{_SEGMENT})*\??)*$"

#: Keys of a rule that are conditions or labels rather than record fields.
RULE_CONDITION_KEYS: tuple[str, ...] = ("name", "path", "query", "method", "status", "when", "type")
ALL_RULE_FIELDS: tuple[str, ...] = tuple(sorted(set().union(*RULE_FIELDS.values())))


def _ref(name: str, description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"$ref": f"#/$defs/{name}"}
    if description:
        out["description"] = description
    return out


def _object(properties: dict[str, Any], description: str, required: list[str] | None = None,
            **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "description": description, "properties": properties,
                           "additionalProperties": False}
    if required:
        out["required"] = required
    out.update(extra)
    return out


def _defs() -> dict[str, Any]:
    static = " ".join(defaults.STATIC_EXTENSIONS)
    return {
        "template": {
            "type": "string",
            "description": "A template: text with {references} such as '{product_id}', '{query.q|lower}', "
                           "'{items[].item_id}'. '{a.b?}': an absent column or field is null; '{a|or:b}': the "
                           "first of a, b that is not null. Converters after '|': int, float, lower, upper, trim, "
                           "urldecode, split:SEP. '{{' and '}}' are literal braces. Resolving to '' means absent.",
        },
        "templateValue": {
            "description": "A template string, or a YAML number or boolean used as a literal value.",
            "type": ["string", "number", "boolean"],
            "errorMessage": "expected a template string (or a literal number or boolean)",
        },
        "templateList": {
            "description": "A list of templates, or one template. Elements that resolve to empty are left out; "
                           "an empty list is absent.",
            "anyOf": [
                _ref("templateValue"),
                {"type": "array", "items": _ref("templateValue")},
            ],
            "errorMessage": "expected a template or a list of templates",
        },
        "templateOrFalse": {
            "description": "A template, or false to leave the value out.",
            "anyOf": [_ref("template"), {"const": False}],
            "errorMessage": "expected a template string or false",
        },
        "regex": {
            "type": "string",
            "minLength": 1,
            "description": "A regular expression in Rust `regex` syntax (linear time; no look-around or "
                           "back-references). Searched, not anchored: write ^…$ yourself. "
                           "Named groups: (?P<name>…).",
        },
        "regexList": {
            "description": "A list of regular expressions (or one).",
            "anyOf": [_ref("regex"), {"type": "array", "items": _ref("regex")}],
            "errorMessage": "expected a regular expression or a list of them",
        },
        "statusItem": {
            "description": "An HTTP status code (200), a class ('2xx') or an inclusive range ('200-299').",
            "anyOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": STATUS_PATTERN},
            ],
            "errorMessage": "expected a status code (200), a class ('2xx') or a range ('200-299')",
            "x-message": "bad status {value}: write a code (200), a class ('2xx') or a range ('200-299')",
        },
        "status": {
            "description": "Statuses to keep: integers, classes like '2xx', or ranges like '200-299'.",
            "anyOf": [_ref("statusItem"), {"type": "array", "items": _ref("statusItem"), "minItems": 1}],
            "errorMessage": "expected a status code, a class ('2xx'), a range ('200-299') or a list of them",
            "x-message": "bad status {value}: write a code (200), a class ('2xx'), a range ('200-299') or a list",
        },
        "methods": {
            "description": "An HTTP method or a list of methods (case-insensitive), e.g. [GET, POST].",
            "anyOf": [
                {"type": "string", "pattern": "^[A-Za-z]+$"},
                {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z]+$"}, "minItems": 1},
            ],
            "errorMessage": "expected an HTTP method like GET or a list of methods",
        },
        "duration": {
            "description": "A duration: 90s, 30m, 1h, 1h30m, or a number of seconds.",
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "errorMessage": "expected a duration like 90s, 30m, 1h30m or a number of seconds",
            "x-message": "bad duration {value}: write e.g. 90s, 30m, 1h30m or a number of seconds",
        },
        "source": _object({
            "format": {
                "type": "string",
                "pattern": defaults.FORMAT_NAME_PATTERN,
                "errorMessage": "a format name is lower-case letters, digits, '_' and ':'",
                "x-message": "bad format {value}: known formats are " + ", ".join(defaults.FORMATS),
                "description": "Input format: " + "; ".join(f"`{k}`: {v}" for k, v in defaults.FORMATS.items()),
                "examples": list(defaults.FORMATS),
            },
            "pattern": {
                **_ref("regex"),
                "description": "With format `regex` only: a regular expression with named groups; each group becomes "
                               "a field (groups named like canonical fields — time, request, status … — are "
                               "normalised the same way).",
            },
            "time_format": {"type": "string", "default": defaults.TIME_FORMAT,
                            "description": "With `regex`: the strptime (chrono) format of the `time` group. "
                                           f"Default: {defaults.TIME_FORMAT}"},
            "timezone": {"type": "string", "default": defaults.TIMEZONE,
                         "description": "IANA time zone for timestamps that carry no offset, e.g. Europe/Paris."},
            "fields": {"type": "object", "additionalProperties": {"enum": list(defaults.FIELD_TARGETS)},
                       "description": "W3C and JSON formats: rename a field (a W3C `#Fields:` name such as "
                                      "`date-local` or `cs(X-Forwarded-Host)`, or a JSON key or dotted path) to a "
                                      "canonical column, e.g. {TimeTakenMS: time_taken, x-host: vhost}."},
            "encoding": {"type": "string", "minLength": 1,
                         "description": "The input's character encoding when it is not UTF-8: any Python codec "
                                        "(latin-1, cp1252, shift_jis, big5, gb18030, utf-16 …)."},
            "prefix": {**_ref("regex"),
                       "description": "A regex removed from the start of every line before parsing (docker compose "
                                      "`name | `, `kubectl logs --prefix`, syslog headers); `logmap formats --detect` "
                                      "proposes one."},
            "captures": {"type": "array", "items": {"enum": list(defaults.CAPTURE_NAMES)},
                         "description": "haproxy: what each header captured in the first `{…}` block is, in the "
                                        "order of the `capture request header` lines (`-` for one to ignore), e.g. "
                                        "[host, user_agent]. Default: recognised by their values."},
            "site": {"type": "string", "pattern": "^https?://[^/\\s]+",
                     "description": "Base URL (https://shop.example.com) used to build absolute page URLs from paths.",
                     "errorMessage": "expected an absolute URL like https://shop.example.com"},
            "options": _object({
                "time": {
                    "description": "Exports: the event-time column — a column name, or "
                                   "{column, unit: s|ms|us|ns} for "
                                   "epoch numbers, or {column, format} for strings (ISO 8601 is tried when omitted).",
                    "anyOf": [
                        {"type": "string", "minLength": 1},
                        _object({
                            "column": {"type": "string", "minLength": 1, "description": "The column (dotted path)."},
                            "unit": {"enum": list(defaults.TIME_UNITS), "description": "Unit of epoch numbers."},
                            "format": {"type": "string", "description": "strptime (chrono) format of strings."},
                        }, "The event-time column and how to read it.", required=["column"]),
                    ],
                    "errorMessage": "expected a column name or {column, unit | format}",
                },
                "page_url": {**_ref("template"),
                             "description": "Exports: template of the page URL, e.g. '{event_params.page_location}' "
                                            "(gives url, path, query)."},
                "referrer": {**_ref("template"), "description": "Exports: template of the referrer."},
                "user_agent": {**_ref("template"), "description": "Exports: template of the user agent."},
                "ip": {**_ref("template"), "description": "Exports: template of the IP address."},
                "required": {"type": "array", "items": {"type": "string"},
                             "description": "Exports: columns that must not be null (else the row is dropped as "
                                            "missing:<column>)."},
                "batch_rows": {"type": "integer", "minimum": 1, "description": "Exports: rows read per batch."},
                "separator": {"type": "string", "minLength": 1, "maxLength": 1,
                              "description": "CSV only: the field separator (default ',', or with format auto "
                                             "the one the first line shows: , tab ; |)."},
                "header": {"type": "boolean", "description": "CSV only: false when the first row is data; then "
                                                            "name the columns with `columns` or `header_file`."},
                "columns": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                            "description": "CSV without a header row: the column names, in order."},
                "header_file": {"type": "string", "minLength": 1,
                                "description": "CSV without a header row: a file whose first line names the "
                                               "columns (Adobe's column_headers.tsv); a relative path is looked "
                                               "for beside each input file, then in the current directory."},
                "quote": {"type": "string", "maxLength": 1,
                          "description": "CSV only: the quote character (default '\"'); '' for none."},
                "escape": {"type": "string", "maxLength": 1,
                           "description": "CSV only: a character that escapes the separator, a newline, the quote "
                                          "or itself inside a value (Adobe data feeds: '\\')."},
            }, "Export formats only (parquet, ndjson, csv, or auto with options): where the event time, page URL, "
               "referrer … are among the export's columns, and how to read the files."),
        }, "How to read the input.", required=["format"], allOf=[{
            "if": {"properties": {"format": {"enum": [f for f in defaults.ACCESS_LOG_FORMATS
                                                     if f != defaults.AUTO_FORMAT]}}, "required": ["format"]},
            "then": {"properties": {"options": False}},
        }]),
        "filter": _object({
            "status": {**_ref("status"), "description": "Keep only these statuses (reason filtered:status). "
                                                        "Default: [200, 201, 202, 203, 204, 206, 304]."},
            "methods": {**_ref("methods"), "description": "Keep only these methods (filtered:method). Default: [GET]."},
            "exclude_static": {
                "description": "Drop static files by extension (filtered:static): true (the default list: "
                               f"{static}), false, or your own list like [js, css].",
                "default": True,
                "anyOf": [{"type": "boolean"},
                          {"type": "array", "items": {"type": "string", "pattern": "^\\.?[A-Za-z0-9_-]+$"}}],
                "errorMessage": "expected true, false or a list of extensions like [js, css]",
            },
            "exclude_bots": {"type": "boolean", "default": True,
                             "description": "Drop crawlers, monitors, scripts and scanners (filtered:bot): the "
                                            "crawler-user-agents list, ua-parser's spiders, and `bot_patterns`."},
            "exclude_empty_user_agents": {
                "type": "boolean",
                "description": "With exclude_bots: an empty or '-' user agent is a bot too (only in logs whose "
                               "lines record user agents). Default true for access logs, false for exports."},
            "bot_patterns": {**_ref("regexList"), "description": "Extra regexes matched against user_agent "
                                                                 "(filtered:bot), e.g. '(?i)uptime|curl/'."},
            "include_paths": {**_ref("regexList"), "description": "If given, keep only paths matching one of these "
                                                                  "regexes (filtered:path)."},
            "exclude_paths": {**_ref("regexList"), "description": "Drop paths matching any of these regexes "
                                                                  "(filtered:path), e.g. ['^/api/', '^/admin']."},
            "drop": {
                "type": "object", "propertyNames": {"pattern": "^[a-z][a-z0-9_]*$"},
                "additionalProperties": _ref("when"),
                "description": "Exports: reason → column conditions (as in a rule's `when`); a row meeting all of "
                               "them is dropped as filtered:<reason>, before the other filters. E.g. "
                               "{exclude_hit: {exclude_hit: {not: 0}}}."},
        }, "Rows to drop before rules, in this order; the first filter that drops a row names the reason."),
        "queryCondition": {
            "description": "true: the parameter is present; false: absent; a string: a regex searched in the "
                           "decoded value.",
            "anyOf": [{"type": "boolean"}, _ref("regex")],
            "errorMessage": "expected true (present), false (absent) or a regex for the value",
        },
        "whenScalar": {"type": ["string", "number", "boolean"]},
        "whenCondition": {
            "description": "A column condition: a value (equal), a list of values (one of), {regex: …}, "
                           "{null: true|false}, or {not: condition}.",
            "anyOf": [
                _ref("whenScalar"),
                {"type": "array", "items": _ref("whenScalar"), "minItems": 1},
                _object({
                    "regex": {**_ref("regex"), "description": "A regex searched in the value (as text)."},
                    "null": {"type": "boolean", "description": "true: the value is absent; false: present."},
                    "not": {**_ref("whenCondition"), "description": "The condition must not hold."},
                }, "A condition on a column's value.", minProperties=1),
            ],
            "errorMessage": "expected a value, a list of values, {regex: …}, {null: true|false} or {not: …}",
        },
        "when": {
            "type": "object",
            "description": "Column conditions (exports): column path → value, list of values, {regex: …} or "
                           "{null: true|false}. Dotted paths reach into nested data (event_params.page_location); "
                           "a path ending in '?' may be absent from the input (its value is then null); "
                           "'a?|or:b?' takes the first of them that is not null.",
            "propertyNames": {"pattern": COLUMN_REF_PATTERN},
            "additionalProperties": _ref("whenCondition"),
        },
        "search": _object({
            "keywords": {**_ref("templateValue"), "description": "The search keywords, e.g. '{query.q}'."},
            "filters": {"type": "object", "description": "Filter name → template or list of templates.",
                        "additionalProperties": _ref("templateList")},
        }, "The search: keywords and filters."),
        **{f"field_{name}": schema for name, schema in {
            "product_ids": {**_ref("templateList"), "description": "Product ids: a list of templates, or one."},
            "product_group_ids": {**_ref("templateList"), "description": "Product group ids: a list of templates."},
            "category": {**_ref("templateList"), "description": "The category path: a list of templates, e.g. "
                                                                "'{cat|split:/}'."},
            "quantities": {**_ref("templateList"), "description": "Quantities (numbers), as many as product_ids."},
            "revenue": {**_ref("templateValue"), "description": "Revenue: one template converted to a number."},
            "rating": {**_ref("templateValue"), "description": "Rating: one template converted to a number."},
            "duration": {**_ref("templateValue"), "description": "Seconds spent; overrides the inferred duration."},
            "search": _ref("search", "The search: {keywords: template, filters: {name: template}}."),
            "custom_action_name": {**_ref("templateValue"), "description": "Name of the custom action (required "
                                                                           "for type custom)."},
            "question_id": {**_ref("templateValue"), "description": "Feedback: question id."},
            "result_type": {**_ref("templateValue"), "description": "Feedback: result type."},
            "value": {**_ref("templateValue"), "description": "Feedback: value."},
            "miso_id": {**_ref("templateValue"), "description": "The miso_id (a UUID) of a recommendation that led "
                                                                "here."},
        }.items()},
    }


def _rule(defs: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "name": {"type": "string", "description": "A label for reports; default 'rule N' (1-based)."},
        "path": {**_ref("regex"), "description": "A regex searched in the request path (anchor it with ^…$); its "
                                                 "named groups (?P<name>…) are fields for this rule's templates."},
        "query": {"type": "object", "description": "Query parameter → true (present), false (absent) or a regex "
                                                   "searched in the decoded value.",
                  "additionalProperties": _ref("queryCondition")},
        "method": {**_ref("methods"), "description": "A method or list of methods."},
        "status": {**_ref("status"), "description": "Statuses, like filter.status."},
        "when": _ref("when", "Column conditions (exports): column path → value, list of values, {regex: …} or "
                             "{null: true|false}."),
        "type": {"type": "string", "enum": list(INTERACTION_TYPES),
                 "description": "The interaction type this rule produces."},
    }
    for name in ALL_RULE_FIELDS:
        properties[name] = _ref(f"field_{name}", defs[f"field_{name}"]["description"])
    checks = []
    conditions = set(RULE_CONDITION_KEYS)
    for type_name in INTERACTION_TYPES:
        allowed = RULE_FIELDS[type_name]
        then: dict[str, Any] = {
            "properties": {name: False for name in ALL_RULE_FIELDS if name not in allowed and name not in conditions},
        }
        if REQUIRED_FIELDS[type_name]:
            then["required"] = sorted(REQUIRED_FIELDS[type_name])
        checks.append({"if": {"properties": {"type": {"const": type_name}}, "required": ["type"]}, "then": then})
    return _object(properties, "A rule: conditions (all must hold) and the record it makes. The first matching rule "
                               "wins; a row matching none is dropped as `unmatched`.",
                   required=["type"], allOf=checks)


def _keyed_hash() -> dict[str, Any]:
    return _object({
        "hmac": {"type": "array", "items": _ref("templateValue"), "minItems": 1,
                 "description": "Templates joined with U+001F, then HMAC-SHA256 (hex)."},
        "key": {"type": "string", "pattern": ENV_KEY_PATTERN, "default": "env:LOGMAP_KEY",
                "description": "env:NAME reads the key from that environment variable; none uses a plain "
                               "SHA-256 (hashes of IPv4 addresses can be reversed). Never the key itself.",
                "errorMessage": "expected env:VARIABLE or none (never the key itself)",
                "x-message": "expected env:VARIABLE (the environment variable holding the key) or "
                             "none; never write the key itself in a mapping"},
    }, "A keyed hash of templates.", required=["hmac"])


def _identity() -> dict[str, Any]:
    return _object({
        "user_id": {
            "description": "Template of the user id ('-' and empty mean absent), a keyed hash {hmac: [templates], "
                           "key: env:NAME | none} (an e-mail address used as the id), or false.",
            "anyOf": [_ref("template"), {"const": False}, _keyed_hash()],
            "errorMessage": "expected a template, {hmac: [templates], key: env:NAME} or false",
        },
        "anonymous_id": {
            "description": "A template, a keyed hash {hmac: [templates], key: env:NAME | none}, or false. Default: "
                           f"{{hmac: {defaults.ANONYMOUS_HMAC}, key: env:{defaults.ANONYMOUS_KEY_ENV}}}.",
            "anyOf": [_ref("template"), {"const": False}, _keyed_hash()],
            "errorMessage": "expected a template, {hmac: [templates], key: env:NAME} or false",
        },
    }, "Who the record is about: user_id and anonymous_id.")


def _context() -> dict[str, Any]:
    page = _object({
        "url": {**_ref("templateOrFalse"), "description": "Page URL; default '{url}'."},
        "referrer": {**_ref("templateOrFalse"), "description": "Referrer; default '{referrer}'."},
        "title": {**_ref("templateOrFalse"), "description": "Page title; default none."},
    }, "The page: url, referrer, title.")
    campaign = _object({name: _ref("templateOrFalse", f"Campaign {name}.") for name in defaults.CAMPAIGN_KEYS},
                       "Campaign fields as templates.")
    return _object({
        "page": {"description": "Page url/referrer/title templates, or false. Default: {url: '{url}', "
                                "referrer: '{referrer}'}.",
                 "anyOf": [page, {"const": False}],
                 "errorMessage": "expected {url, referrer, title} templates or false"},
        "user_agent": {**_ref("templateOrFalse"), "description": "User agent; default '{user_agent}'."},
        "truncated_ip": {**_ref("templateOrFalse"), "description": "IPv4 with its last octet zeroed; default "
                                                                   "'{ip}'. IPv6 and host names are left out."},
        "campaign": {"description": "utm (from utm_* parameters of the page URL; the default), a mapping of "
                                    "name/source/medium/term/content to templates, or false.",
                     "anyOf": [{"const": "utm"}, {"const": False}, campaign],
                     "errorMessage": "expected utm, false, or a mapping of name/source/medium/term/content templates",
                     "x-message": "bad campaign {value}: write utm, false, or a mapping of "
                                  "name/source/medium/term/content to templates"},
        "locale": {**_ref("templateOrFalse"), "description": "Locale template; default none."},
        "region": {**_ref("templateOrFalse"), "description": "Region template; default none."},
        "custom_context": {"type": "object", "description": "Key → template (converters decide the JSON type).",
                           "additionalProperties": _ref("templateList")},
    }, "The record's context object. Set any entry to false to leave it out.")


def _durations() -> dict[str, Any]:
    return _object({
        "from": {"type": "string", "default": defaults.DURATIONS_FROM,
                 "description": "next_event (time to the visitor's next record by event time), pings (engaged time "
                                "from the page view's pings, see `pings`; else next_event), none (never infer), "
                                "or a template of a column holding seconds (exports).",
                 "anyOf": [{"enum": list(defaults.DURATION_METHODS)}, {"pattern": "\\{"}],
                 "errorMessage": "expected next_event, pings, none or a template like '{engagement_seconds}'"},
        "pings": _object({
            "page": {**_ref("template"),
                     "description": "Template of the page view id that records and pings share (Snowplow: the "
                                    "web_page context's id). Required."},
            "when": {**_ref("when"), "default": defaults.PING_WHEN,
                     "description": "Column conditions a ping meets, as in a rule's `when:`."},
            "heartbeat": {**_ref("duration"), "default": defaults.HEARTBEAT,
                          "description": f"The tracker's ping interval. Default {defaults.HEARTBEAT}."},
            "min_visit": {**_ref("duration"), "default": defaults.MIN_VISIT,
                          "description": "Time before the first ping (the page view itself). Default "
                                         f"{defaults.MIN_VISIT}."},
        }, "With `from: pings`: rows meeting `when` are not records; a page view's engaged time is heartbeat x "
           "(distinct heartbeat windows with a ping - 1) + min_visit, given to its records (capped at `max`).",
            required=["page"]),
        "unit": {"enum": list(defaults.DURATION_UNITS), "default": defaults.DURATION_UNIT,
                 "description": "Unit of the column that `from` names: s, ms or us (GA4's engagement_time_msec: ms)."},
        "session_timeout": {**_ref("duration"), "default": defaults.SESSION_TIMEOUT,
                            "description": "A longer gap ends the session: the record gets no duration. Default 30m."},
        "max": {**_ref("duration"), "default": defaults.MAX_DURATION,
                "description": "Durations above this are capped to it. Default 30m."},
    }, "How `duration` is inferred for the types that carry it.")


def _test() -> dict[str, Any]:
    expect_properties: dict[str, Any] = {
        "dropped": {"type": "string", "description": "The expected drop reason, e.g. filtered:static."},
        "type": {"type": "string", "enum": list(INTERACTION_TYPES), "description": "The expected type."},
        "user_id": {"type": "string", "description": "The expected user_id."},
        "anonymous_id": {"type": "string", "description": "The expected anonymous_id."},
        "timestamp": {"type": "string", "description": "The expected timestamp (2024-03-01T10:00:00.000Z)."},
        "context": {"type": "object", "description": "Expected context entries (those listed are compared)."},
        "counts": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
                   "description": "Expected number of records per interaction type, for multi-line cases."},
    }
    for name in ALL_RULE_FIELDS:
        expect_properties[name] = {"description": f"The expected {name}."}
    expect = _object(expect_properties, "The expected record (fields listed are compared) or {dropped: reason}.")
    return _object({
        "name": {"type": "string", "description": "A label for the test."},
        "line": {"type": "string", "description": "One input line."},
        "lines": {"type": "array", "items": {"type": "string"}, "description": "Several input lines."},
        "row": {"type": "object", "description": "One export row (column → value)."},
        "rows": {"type": "array", "items": {"type": "object"}, "description": "Several export rows."},
        "expect": {"description": "The expected record or drop reason (a list: one per line or row).",
                   "anyOf": [expect, {"type": "array", "items": expect}],
                   "errorMessage": "expected the record's fields, {dropped: reason}, or a list of those"},
    }, "A test case run by `logmap test`: input in, record or drop reason out.", required=["expect"])


def build_schema() -> dict[str, Any]:
    """The mapping-file schema as a dict (what ``mapping.schema.json`` contains)."""
    defs = _defs()
    defs["rule"] = _rule(defs)
    defs["identity"] = _identity()
    defs["context"] = _context()
    defs["durations"] = _durations()
    defs["test"] = _test()
    top = _object({
        "logmap": {"const": defaults.LANGUAGE_VERSION, "description": "Mapping language version; must be 1.",
                   "errorMessage": "this logmap reads mapping language version 1: write 'logmap: 1'",
                   "x-message": "unsupported mapping language version {value}: this logmap reads version 1 "
                                "(write 'logmap: 1')"},
        "name": {"type": "string", "description": "A label shown in reports."},
        "description": {"type": "string", "description": "Free text."},
        "source": _ref("source", "How to read the input."),
        "filter": _ref("filter", "Rows to drop before rules, each with a reason code."),
        "rules": {"type": "array", "minItems": 1, "items": _ref("rule"),
                  "description": "Ordered rules; the first that matches a row decides its record."},
        "identity": _ref("identity", "user_id and anonymous_id."),
        "context": _ref("context", "The record's context object."),
        "durations": _ref("durations", "How duration is inferred."),
        "dedupe": _object({
            "by": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": COLUMN_REF_PATTERN},
                   "description": "The fields that identify an event (event_id, messageId, a.b paths)."},
        }, "Drop later rows whose key (the `by` fields) an earlier row of the run had, as `duplicate`; rows with "
           "a null key field are kept.", required=["by"]),
        "tests": {"type": "array", "items": _ref("test"), "description": "Test cases run by `logmap test`."},
    }, "A logmap mapping (language v1): how web access logs or analytics exports become interaction records. "
       "Reference: docs/mapping.md.", required=["logmap", "source", "rules"],
        patternProperties={"^x-": {"description": "Ignored: a place for YAML anchors (x-common: &common …)."}})
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "logmap mapping (v1)", **top,
            "$defs": defs}


def main() -> None:
    """Print the schema (used to regenerate ``mapping.schema.json``)."""
    json.dump(build_schema(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
