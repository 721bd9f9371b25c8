"""A starter mapping proposed from a sample log (``logmap init SAMPLE``).

Why it looks like this: writing the first mapping means knowing the log's format and its URL shapes. Both can be
read off a sample: the format by detection (``logmap.sources.detect``), the shapes by reducing every page path to
a *shape* (``/product/1956-trail-merino`` → ``/product/{id}``, ``/category/shoes/running`` →
``/category/*/*``) and counting them, columnar, over the sample. The most frequent shapes become rules, in
order, with their counts in a comment, a type guessed from their words (``product`` → product page…) and
``custom`` (with the shape as action name) when no word fits, so the mapping runs as is and the user only
renames and retypes. Rules are added until they cover ``COVERAGE`` of the sample's page requests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl
import yaml

from logmap.mapping import defaults
from logmap.mapping.model import Source

COVERAGE = 0.97
MAX_RULES = 25
SAMPLE_LINES = 100_000

_PRODUCT = {"product", "products", "p", "item", "items", "dp", "pd"}
_CATEGORY = {"category", "categories", "c", "collections", "collection", "cat", "shop", "department"}
_SEARCH = {"search", "s", "find"}
_SEARCH_KEYS = ("q", "query", "search", "s", "keyword", "keywords", "term")


@dataclass(frozen=True)
class Shape:
    """A path shape with its method and how many page requests of the sample have it."""

    method: str
    shape: str
    count: int


def page_requests(parsed: pl.DataFrame) -> pl.DataFrame:
    """Rows a starter mapping keeps: parsed, 2xx/304, GET/POST, not a static file (as the default filter)."""
    ext = pl.col("path").str.extract(r"\.([A-Za-z0-9]+)$").str.to_lowercase()
    return parsed.filter(pl.col("_drop").is_null() & pl.col("path").is_not_null()
                         & (pl.col("status").is_between(200, 299) | (pl.col("status") == 304))
                         & pl.col("method").is_in(["GET", "POST"])
                         & (ext.is_null() | ~ext.is_in(defaults.STATIC_EXTENSIONS)))


def shape_expr(path: pl.Expr) -> pl.Expr:
    """``/a/123-x/b`` → ``/a/{id}/*``: the first segment kept, later ones reduced to ``{id}`` or ``*``."""
    segments = path.str.strip_prefix("/").str.strip_suffix("/").str.split("/")
    first = segments.list.first()
    rest = segments.list.slice(1).list.eval(
        pl.when(pl.element().str.contains(r"^\d+(?:-[^/]*)?$")).then(pl.lit("{id}")).otherwise(pl.lit("*")))
    return pl.concat_str([pl.lit("/"), first, rest.list.join("/").str.replace(r"^(.)", "/$1")], ignore_nulls=True)


def shapes(pages: pl.DataFrame) -> list[Shape]:
    """Shapes by frequency (ties by name, so the output is reproducible)."""
    counted = (pages.group_by(pl.col("method"), shape_expr(pl.col("path")).alias("shape")).len()
               .sort(["len", "shape", "method"], descending=[True, False, False]))
    return [Shape(m, s, n) for m, s, n in counted.iter_rows()]


def _regex(shape: str) -> tuple[str, list[str]]:
    """The path regex of a shape and its named groups (``id``, ``part1``…)."""
    if shape == "/":
        return "^/$", []
    parts, groups = [], []
    for i, segment in enumerate(shape.strip("/").split("/")):
        if i == 0:
            parts.append(re.escape(segment))
        elif segment == "{id}":
            name = "id" if "id" not in groups else f"id{i}"
            groups.append(name)
            parts.append(rf"(?P<{name}>\d+)(?:-[^/]*)?")
        else:
            name = f"part{i}"
            groups.append(name)
            parts.append(rf"(?P<{name}>[^/]+)")
    return "^/" + "/".join(parts) + "/?$", groups


def _rule(item: Shape, pages: pl.DataFrame) -> dict[str, object]:
    """One rule for a shape: path regex, method, and a type guessed from the first path word."""
    pattern, groups = _regex(item.shape)
    word = item.shape.strip("/").split("/")[0].lower()
    rule: dict[str, object] = {"name": f"{item.method} {item.shape}", "path": pattern, "method": item.method}
    ids = [g for g in groups if g.startswith("id")]
    parts = [g for g in groups if g.startswith("part")]
    if item.shape == "/":
        rule["type"] = "home_page_view"
    elif word in _PRODUCT and ids:
        rule |= {"type": "product_detail_page_view", "product_ids": [f"{{{ids[0]}}}"]}
    elif word in _CATEGORY and parts:
        rule |= {"type": "category_page_view", "category": ["{" + p + "}" for p in parts]}
    elif word in _SEARCH and len(groups) == 0:
        key = _search_key(pages, item.shape)
        rule |= {"type": "search", **({"search": {"keywords": f"{{query.{key}}}"}} if key else {})}
    elif ("checkout" in item.shape or "order" in word) and ("confirm" in item.shape or "success" in item.shape):
        rule["type"] = "checkout"
    else:
        rule |= {"type": "custom", "custom_action_name": f"view {item.shape}" if item.method == "GET"
                 else f"{item.method.lower()} {item.shape}"}
    return rule


def _search_key(pages: pl.DataFrame, shape: str) -> str | None:
    queries = pages.filter(shape_expr(pl.col("path")) == shape)["query"].drop_nulls()
    for key in _SEARCH_KEYS:
        if queries.str.contains(rf"(?:^|&){key}=").any():
            return key
    return None


def propose(parsed: pl.DataFrame, fmt: str, sample_name: str) -> tuple[str, float]:
    """The starter mapping's YAML text for a parsed sample, and the share of page requests its rules cover."""
    pages = page_requests(parsed)
    total = max(pages.height, 1)
    chosen, covered = [], 0
    for item in shapes(pages):
        if covered / total >= COVERAGE or len(chosen) >= MAX_RULES:
            break
        chosen.append(item)
        covered += item.count
    rules = [_rule(item, pages) for item in chosen]
    head = {"logmap": 1, "name": f"starter mapping for {sample_name}",
            "source": {"format": fmt, "timezone": "UTC"},
            "filter": {"status": ["2xx", 304], "methods": ["GET", "POST"], "exclude_static": True,
                       "exclude_bots": True},
            "identity": {"user_id": "{user}", "anonymous_id": {"hmac": ["{ip}", "{user_agent}"],
                                                                "key": "env:LOGMAP_KEY"}},
            "context": {"page": {"url": "{url}", "referrer": "{referrer}"}, "user_agent": "{user_agent}",
                        "truncated_ip": "{ip}"}}
    lines = [f"# Starter mapping proposed by `logmap init` from {sample_name}: format {fmt} (detected),",
             f"# {len(rules)} rules covering {covered}/{pages.height} page requests of the sample "
             f"({covered / total:.0%}). Rename the rules, fix the guessed types, then run",
             "#   logmap check THIS_FILE  and  LOGMAP_KEY=... logmap convert LOG -m THIS_FILE -o out/",
             yaml.safe_dump(head, sort_keys=False, allow_unicode=True, width=120).rstrip(), "", "rules:"]
    for item, rule in zip(chosen, rules):
        lines.append(f"  # {item.count} requests ({item.count / total:.1%}), e.g. shape {item.shape}")
        body = yaml.safe_dump([rule], sort_keys=False, allow_unicode=True, width=120).rstrip()
        lines.extend("  " + line for line in body.splitlines())
    if not rules:  # no page request in the sample (only static files, or all filtered): one catch-all rule
        lines += ["  # no page request in the sample: a catch-all rule so that the mapping runs; replace it",
                  "  - {name: every page, path: '^/', type: custom, custom_action_name: view}"]
    lines += ["", "durations: {from: next_event, session_timeout: 30m, max: 30m}", ""]
    return "\n".join(lines), covered / total


def starter_for(sample: str) -> tuple[str, str, float]:
    """(YAML text, detected format, coverage) for the sample file ``sample`` (its first lines)."""
    from logmap.sources.accesslog import parse
    from logmap.sources.detect import best
    from logmap.sources.lines import read_lines

    lines = next(iter(read_lines(sample, chunk_bytes=64 * 1024 * 1024)), None)
    if lines is None or lines.height == 0:
        from logmap.errors import InputError

        raise InputError(f"{sample} is empty: init needs a sample of the log")
    lines = lines.head(SAMPLE_LINES)
    fmt = best(lines, sample).name
    text, coverage = propose(parse(lines, Source(format=fmt)), fmt, sample)
    return text, fmt, coverage
