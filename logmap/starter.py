"""A starter mapping proposed from a sample log (``logmap init SAMPLE``).

Why it looks like this: writing the first mapping means knowing the log's format and its URL shapes. Both can be
read off a sample. The format is the detector's verdict on the first lines, exactly as ``logmap formats --detect``
gives it. The sample's *page requests* are the rows the starter's own filter keeps (successful GETs, no static
file, no bot — the pipeline's filter itself — and no asset served without an extension, recognised by its path:
``/image/123/productModel/200x200``, ``/static/…``, ``/_next/…``). Rules are then proposed only for shapes that
have a name in e-commerce:

* search: a query parameter ``q``, ``s``, ``query``, ``phrase``, ``search`` or ``keyword`` with a value, or a
  path ``/search/<keywords>``;
* home: ``/``;
* product page: an id or slug after ``/product``, ``/products``, ``/p``, ``/dp``, ``/item``, ``/items``;
* category page: the segments after ``/category``, ``/c``, ``/browse``, ``/filter``, ``/collections``…;
* order confirmation: ``checkout`` or ``order`` with ``confirm``, ``success`` or ``thank``.

Each may follow one leading segment (``/m/product/…``, ``/en/category/…``, ``/Some-Title/dp/…``). A rule is
proposed when the sample has such requests, with the share of page requests it takes (first match wins, as in a
run). Every other shape is listed, most frequent first, as a commented suggestion to uncomment and type — never
emitted as ``custom``, so the mapping's records are all of named types and the rest is counted ``unmatched``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import yaml

from logmap.mapping.model import Filter, Source

SAMPLE_LINES = 100_000
#: Commented suggestions listed for the shapes no rule names.
MAX_SUGGESTIONS = 15

#: Assets served without an extension, by their path: image, media and thumbnail folders, size segments
#: (``200x200``), static and build folders. The starter's filter excludes them (``filtered:path``).
ASSET_PATHS = (r"(?i)(?:^|/)(?:images?|img|media|thumbs?|thumbnails?|static|assets|_next|fonts?)(?:/|$)"
               r"|/thumb|(?:^|/)\d{2,4}x\d{2,4}(?:/|$)")
PRODUCT_WORDS = ("product", "products", "p", "dp", "item", "items")
CATEGORY_WORDS = ("category", "categories", "c", "browse", "filter", "collections", "collection", "department")
SEARCH_KEYS = ("q", "s", "query", "phrase", "search", "keyword")
#: One optional leading segment: a locale or a mobile site (``/en``, ``/m``), a title before Amazon's ``/dp/``.
_LEAD = r"(?:/[^/]+)?"
_ORDER_DONE = r"(?i)^/[^?]*(?:checkout|order)[^?]*(?:confirm|success|thank)"


@dataclass
class Proposal:
    """A rule the starter proposes, with how many of the sample's page requests it takes."""

    rule: dict[str, Any]
    matches: pl.Expr
    count: int = 0
    example: str = ""


@dataclass
class Starter:
    """What ``propose`` found: the YAML text, the detected format, and the coverage per rule."""

    text: str
    format: str
    pages: int
    rules: list[tuple[str, int]] = field(default_factory=list)
    suggestions: list[tuple[str, int]] = field(default_factory=list)

    @property
    def covered(self) -> int:
        return sum(count for _, count in self.rules)

    @property
    def coverage(self) -> float:
        return self.covered / self.pages if self.pages else 0.0


def starter_filter() -> Filter:
    """The filter the starter mapping writes (the defaults, GET only, ``exclude_paths`` for assets aside)."""
    from logmap.mapping import defaults

    return Filter(status=list(defaults.STATUS), methods=["GET"], static_extensions=list(defaults.STATIC_EXTENSIONS))


def page_requests(parsed: pl.DataFrame) -> pl.DataFrame:
    """Rows a starter mapping keeps: what its filter keeps (the pipeline's own filter), and no asset path."""
    from logmap.transform.filter import apply_filter

    kept = apply_filter(parsed, starter_filter()).filter(pl.col("_drop").is_null() & pl.col("path").is_not_null())
    return kept.filter(~pl.col("path").str.contains(ASSET_PATHS))


def shape_expr(path: pl.Expr) -> pl.Expr:
    """``/a/123-x/b`` → ``/a/{id}/*``: the first segment kept, later ones reduced to ``{id}`` or ``*``."""
    segments = path.str.strip_prefix("/").str.strip_suffix("/").str.split("/")
    first = segments.list.first()
    rest = segments.list.slice(1).list.eval(
        pl.when(pl.element().str.contains(r"^\d+(?:-[^/]*)?$")).then(pl.lit("{id}")).otherwise(pl.lit("*")))
    return pl.concat_str([pl.lit("/"), first, rest.list.join("/").str.replace(r"^(.)", "/$1")], ignore_nulls=True)


def _has(pages: pl.DataFrame, condition: pl.Expr) -> pl.DataFrame:
    return pages.filter(condition.fill_null(False))


def _candidates(pages: pl.DataFrame) -> list[Proposal]:
    """Every rule the sample supports, in the order a mapping should try them."""
    path, query = pl.col("path"), pl.col("query").fill_null("")
    out = []
    for key in SEARCH_KEYS:
        condition = query.str.contains(rf"(?:^|&){re.escape(key)}=[^&]")
        out.append(Proposal({"name": f"search (?{key}=)", "query": {key: "."}, "type": "search",
                             "search": {"keywords": f"{{query.{key}}}"}}, condition))
    out.append(Proposal({"name": "search page", "path": rf"^{_LEAD}/search/(?P<keywords>[^/]+)/?$",
                         "type": "search", "search": {"keywords": "{keywords|urldecode}"}},
                        path.str.contains(rf"^{_LEAD}/search/[^/]+/?$")))
    out.append(Proposal({"name": "home", "path": "^/$", "type": "home_page_view"}, path == "/"))
    for word in PRODUCT_WORDS:
        anchor = rf"^{_LEAD}/{word}/"
        found = _has(pages, path.str.contains(anchor + r"[^/]+"))
        numeric = found.height and found.select(
            path.str.contains(anchor + r"\d+(?:-[^/]*)?(?:/|$)").mean()).item() >= 0.5
        regex = anchor + (r"(?P<product_id>\d+)(?:-[^/]*)?(?:/|$)" if numeric else r"(?P<product_id>[^/]+)")
        out.append(Proposal({"name": f"product page (/{word}/)", "path": regex, "type": "product_detail_page_view",
                             "product_ids": ["{product_id}"]}, path.str.contains(regex)))
    for word in CATEGORY_WORDS:
        regex = rf"^{_LEAD}/{word}/(?P<category>.+?)/?$"
        out.append(Proposal({"name": f"category page (/{word}/)", "path": regex, "type": "category_page_view",
                             "category": "{category|urldecode|split:/}"}, path.str.contains(regex)))
    out.append(Proposal({"name": "order confirmation", "path": _ORDER_DONE, "type": "checkout"},
                        path.str.contains(_ORDER_DONE)))
    return out


def _first_match(pages: pl.DataFrame, proposals: list[Proposal]) -> pl.Expr:
    """The index of the first proposal each page request matches (null: none), as a run would pick."""
    index = pl.lit(None, pl.Int32)
    for i, proposal in reversed(list(enumerate(proposals))):
        index = pl.when(proposal.matches.fill_null(False)).then(pl.lit(i, pl.Int32)).otherwise(index)
    return index


def _site(parsed: pl.DataFrame) -> str | None:
    """``https://`` + the most frequent host of the log's host field, when it has one."""
    if "vhost" not in parsed.columns:
        return None
    hosts = parsed.get_column("vhost").drop_nulls()
    hosts = hosts.filter(hosts.str.contains(r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"))
    if hosts.len() == 0:
        return None
    return "https://" + hosts.value_counts(sort=True).row(0)[0].lower()


def _suggestion(shape: str, count: int, share: float, example: str) -> list[str]:
    """A commented rule for a shape no proposal names: the user uncomments it and gives it a type."""
    parts = []
    for segment in shape.strip("/").split("/"):
        parts.append(r"\d+(?:-[^/]*)?" if segment == "{id}" else "[^/]+" if segment == "*" else re.escape(segment))
    regex = "^/" + "/".join(parts) + "/?$" if shape != "/" else "^/$"
    line = yaml.safe_dump([{"name": shape, "path": regex, "type": "TYPE"}], default_flow_style=True,
                          allow_unicode=True, width=400).strip().lstrip("[").rstrip("]")
    return [f"  # {count} requests ({share:.1%}), e.g. {example}", f"  # - {line}"]


def propose(parsed: pl.DataFrame, fmt: str, sample_name: str) -> Starter:
    """The starter mapping for a parsed sample, and the share of page requests each proposed rule takes."""
    pages = page_requests(parsed).with_columns(pl.col("query").fill_null(""))
    total = pages.height
    candidates = _candidates(pages)
    picked = pages.with_columns(_first_match(pages, candidates).alias("_rule"))
    counts = dict(picked.group_by("_rule").len().drop_nulls().iter_rows())
    examples = dict(picked.drop_nulls("_rule").group_by("_rule").agg(pl.col("path").first()).iter_rows())
    chosen = []
    for i, proposal in enumerate(candidates):
        proposal.count, proposal.example = counts.get(i, 0), examples.get(i, "")
        if proposal.count or (proposal.rule["name"] == "home" and not any(counts.values())):
            chosen.append(proposal)  # home stays, even unseen, when nothing else is: a mapping needs a rule
    rest = (picked.filter(pl.col("_rule").is_null()).group_by(shape_expr(pl.col("path")).alias("shape"))
            .agg(pl.len().alias("n"), pl.col("path").first().alias("example"))
            .sort(["n", "shape"], descending=[True, False]))
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    filter_spec: dict[str, Any] = {"status": ["2xx", 304], "methods": ["GET"], "exclude_static": True,
                                   "exclude_bots": True}
    assets = parsed.filter(pl.col("path").str.contains(ASSET_PATHS).fill_null(False)).height
    if assets:
        filter_spec["exclude_paths"] = [ASSET_PATHS]
    source: dict[str, Any] = {"format": fmt, "timezone": "UTC"}
    site = _site(parsed)
    if site:
        source["site"] = site
    head = {"logmap": 1, "name": f"starter mapping for {sample_name}", "source": source, "filter": filter_spec,
            "identity": {"user_id": "{user}", "anonymous_id": {"hmac": ["{ip}", "{user_agent}"],
                                                                "key": "env:LOGMAP_KEY"}},
            "context": {"page": {"url": "{url}", "referrer": "{referrer}"}, "user_agent": "{user_agent}",
                        "truncated_ip": "{ip}"}}
    covered = sum(p.count for p in chosen)
    lines = [f"# Starter mapping proposed by `logmap init` from {sample_name}: format {fmt} (detected),",
             f"# {len(chosen)} rules covering {covered}/{total} page requests of the sample "
             f"({share(covered):.0%}); {rest.height} other shapes are suggested in comments below the rules.",
             f"# Page requests: successful GETs that are not static files, bots or asset paths ({assets} asset "
             "requests in the sample).",
             "# Check the rules, uncomment and type the suggestions you want, then run",
             "#   logmap check THIS_FILE  and  LOGMAP_KEY=... logmap convert LOG -m THIS_FILE -o out/",
             yaml.safe_dump(head, sort_keys=False, allow_unicode=True, width=120).rstrip(), "", "rules:"]
    if site:
        lines.insert(3, "# source.site is the log's most frequent host (check the scheme).")
    for proposal in chosen:
        lines.append(f"  # {proposal.count} requests ({share(proposal.count):.1%}), e.g. {proposal.example}")
        body = yaml.safe_dump([proposal.rule], sort_keys=False, allow_unicode=True, width=120).rstrip()
        lines.extend("  " + line for line in body.splitlines())
    suggestions = list(rest.head(MAX_SUGGESTIONS).iter_rows())
    if suggestions:
        lines += ["", "  # Shapes without a known e-commerce name, most frequent first: uncomment, set the type (see",
                  "  # docs/mapping.md, e.g. read, promo_page_view, custom with custom_action_name) and add fields."]
        for shape, n, example in suggestions:
            lines += _suggestion(shape, n, share(n), example)
    lines += ["", "durations: {from: next_event, session_timeout: 30m, max: 30m}", ""]
    return Starter(text="\n".join(lines), format=fmt, pages=total,
                   rules=[(p.rule["name"], p.count) for p in chosen],
                   suggestions=[(shape, n) for shape, n, _ in suggestions])


def starter_for(sample: str) -> Starter:
    """The starter mapping for the sample file ``sample``: the format ``logmap formats --detect`` names from its
    first lines, and rules from its first ``SAMPLE_LINES`` lines."""
    from logmap.sources.accesslog import parse
    from logmap.sources.detect import SAMPLE_LINES as DETECT_LINES
    from logmap.sources.detect import best
    from logmap.sources.lines import read_lines

    lines = next(iter(read_lines(sample, chunk_bytes=64 * 1024 * 1024)), None)
    if lines is None or lines.height == 0:
        from logmap.errors import InputError

        raise InputError(f"{sample} is empty: init needs a sample of the log")
    fmt = best(lines.head(DETECT_LINES), sample).name
    return propose(parse(lines.head(SAMPLE_LINES), Source(format=fmt)), fmt, sample)
