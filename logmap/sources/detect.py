"""Name the access-log format of a sample of lines (``logmap formats --detect``, ``format: auto``).

Why it looks like this: the formats *are* their parsers, so detection just parses the first lines with every
preset and compares. A format's **share** is the part of the sample's content lines (neither blank nor a
``#`` directive, which no format turns into a record) it parses. Formats within ``SHARE_TOLERANCE`` of the best
share form the top tier (one odd line must not decide), ranked by how many canonical fields a parsed line fills
on average (a combined line also parses as ``common``, with fewer fields), then by a signature only that server
writes (presets sharing a parser: the JSON ones, the W3C family, ``combined_xff``), then by how many fields the
format's definition names (the more specific wins), then by share. Two formats equal on all of it are a tie:
the caller must say so and let the user choose. Lines wrapped in a known prefix (``PREFIXES``: docker compose,
kubectl, syslog, journald) are also tried stripped; ``why`` says in a sentence why the winner beat the
runner-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import cast

import polars as pl

from logmap.errors import InputError
from logmap.mapping.model import Source
from logmap.sources.jsonlog import is_json_object
from logmap.sources.w3c import FIELDS_DIRECTIVE
from logmap.sources.xff import TRAILING_XFF

SAMPLE_LINES = 1000
#: Formats whose shares differ by at most this much parse "the same lines": one odd line in a sample (a health
#: check without a user agent in a combined log) must not hand the verdict to a format that reads less.
SHARE_TOLERANCE = 0.01
#: A prefix is tried when at least this share of the content lines starts with it.
PREFIX_SHARE = 0.5

_W3C_FIELDS = pl.col("_raw").str.strip_chars_start().str.starts_with(FIELDS_DIRECTIVE)
_SOFTWARE = pl.col("_raw").str.strip_chars_start().str.to_lowercase().str.starts_with
#: Presets sharing a parser (the JSON ones; the W3C family; combined and combined_xff) → a line only that
#: server writes: a sample without it scores lower for that preset.
SIGNATURES: dict[str, pl.Expr] = {
    "caddy": pl.col("_raw").str.json_path_match("$.request.uri").is_not_null(),
    "nginx_json": (pl.col("_raw").str.json_path_match("$.remote_addr").is_not_null()
                   | (pl.col("_raw").str.json_path_match("$.referrer").is_not_null()
                      & pl.col("_raw").str.json_path_match("$.date").is_not_null())),
    "traefik": pl.col("_raw").str.json_path_match("$.ClientHost").is_not_null(),
    "cloudflare": pl.col("_raw").str.json_path_match("$.ClientRequestURI").is_not_null(),
    "cloudfront": _W3C_FIELDS & pl.col("_raw").str.contains("x-edge-", literal=True),
    "shoutcast": _SOFTWARE("#software: shoutcast"),
    "incapsula": _SOFTWARE("#software: incapsula"),
    "combined_xff": pl.col("_raw").str.contains(TRAILING_XFF),
}
#: Formats that parse every line of a more general one and differ only by a field their signature finds: a
#: line counts as parsed for them only when it carries the signature (a combined line without a trailing
#: X-Forwarded-For is combined, not combined_xff).
SIGNATURE_REQUIRED = frozenset({"combined_xff"})
#: The generic member of a family of presets sharing a parser, chosen when no member's signature is found
#: (a W3C log that is neither CloudFront, Shoutcast nor Incapsula is plain ``w3c``).
GENERIC = frozenset({"w3c"})
#: Line prefixes that wrap access logs, tried by detection (``source.prefix`` strips them): name → regex.
PREFIXES: dict[str, str] = {
    "docker compose": r"[\w.-]+\s+\| ",
    "kubectl logs --prefix": r"\[pod/[^/\]]+/[^\]]+\] ",
    "syslog": r"[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d \S+ [^:\[ ]+(?:\[\d+\])?: ",
    "journald / RFC 5424 syslog": r"(?:<\d+>\d* ?)?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d) "
                                  r"\S+ [^:\[ ]+(?:\[\d+\])?: ",
}
_FIELDS = ("ip", "user", "time", "method", "path", "query", "protocol", "status", "bytes", "referrer",
           "user_agent", "vhost")


@dataclass(frozen=True)
class Candidate:
    """How well one format parses the sample."""

    name: str
    share: float      # parsed content lines / content lines
    fields: float     # mean non-null canonical fields per parsed line
    signature: float  # share of lines carrying the preset's signature (presets sharing a parser), else 0
    declared: int = 0  # fields the format's definition names: the more specific of two formats names more
    prefix: str | None = None  # the name of the PREFIXES entry stripped first, if any

    def key(self, tier: bool) -> tuple[bool, float, float, int, float]:
        return (tier, round(self.fields, 6), round(self.signature, 6), self.declared, round(self.share, 6))


def candidate_formats() -> list[str]:
    """Every preset detection tries (``regex``, ``nginx`` and ``apache`` need a pattern: never guessed)."""
    from logmap.sources.accesslog import known_formats

    return [name for name in known_formats() if name not in ("regex", "auto", "nginx", "apache")]


def _content(lines: pl.DataFrame) -> pl.DataFrame:
    raw = pl.col("_raw")
    return lines.filter((raw.str.strip_chars() != "") & ~raw.str.strip_chars_start().str.starts_with("#"))


def could_parse(lines: pl.DataFrame, prefix: str | None) -> dict[str, bool]:
    """Which candidates could parse any line of ``lines``, by one cheap pass (a test per format, one collect).

    A "no" is certain: a preset cannot match a line its regex does not find, a JSON preset reads only lines
    that are objects, a W3C preset only lines below a ``#Fields:`` directive (or one carried from an earlier
    chunk), ``combined_xff`` only lines with its signature. Such a format scores nothing, so ``_score`` skips
    parsing with it; scoring every format costs ~10 ms each even on five lines, ~0.3 s per sample.
    """
    from logmap.sources import accesslog

    text = pl.col("_raw")
    if prefix:
        text = accesslog.without_prefix(text, PREFIXES[prefix])
    modules = {name: accesslog.PLUGINS[name][0] for name in accesslog.PLUGINS}
    tests: dict[str, pl.Expr] = {}
    for name in candidate_formats():
        if name in accesslog.FORMATS:
            tests[name] = text.str.contains(accesslog.FORMATS[name].pattern)
        elif modules.get(name) == "jsonlog":
            tests[name] = is_json_object(text)
        elif modules.get(name) == "w3c":
            tests[name] = text.str.contains(FIELDS_DIRECTIVE, literal=True) | (pl.col("_line").min() != 1)
        elif modules.get(name) == "xff":
            tests[name] = text.str.contains(TRAILING_XFF)
    if not tests or not lines.height:
        return {name: bool(lines.height) for name in candidate_formats()}
    found = lines.select(**{name: test.any() for name, test in tests.items()}).row(0, named=True)
    return {name: bool(found.get(name, True)) for name in candidate_formats()}


def _score(lines: pl.DataFrame, prefix: str | None, *, screen: bool = True) -> list[Candidate]:
    """Every candidate scored on ``lines``; ``screen=False`` parses with every format (the reference)."""
    from logmap.sources import accesslog

    total = max(_content(lines).height, 1)
    pattern = PREFIXES[prefix] if prefix else None
    readable = could_parse(lines, prefix) if screen else dict.fromkeys(candidate_formats(), True)
    signatures = lines.select(**{name: expr.sum() for name, expr in SIGNATURES.items()}).row(0, named=True)
    results = []
    for name in candidate_formats():
        share, filled = 0.0, 0.0
        if readable[name]:
            parsed = accesslog.parse(lines, Source(format=name, prefix=pattern)).filter(pl.col("_drop").is_null())
            if name in SIGNATURE_REQUIRED:
                parsed = parsed.filter(SIGNATURES[name])
            ok = _content(parsed)
            share = ok.height / total
            if ok.height:
                mean = ok.select(pl.sum_horizontal(*(pl.col(f).is_not_null() for f in _FIELDS))).to_series().mean()
                filled = float(cast(float, mean) or 0.0)
        signature = (signatures[name] or 0) / max(lines.height, 1) if name in SIGNATURES else 0.0
        results.append(Candidate(name, share, filled, signature, _declared(name), prefix))
    return results


@cache
def _declared(name: str) -> int:
    """How many fields a format's definition names (its regex groups; the generic W3C preset counts 1)."""
    from logmap.sources import accesslog

    if name in accesslog.FORMATS:
        return len(accesslog.group_names(accesslog.FORMATS[name].pattern))
    return int(name in GENERIC)


def _in_tier(candidate: Candidate, top_share: float) -> bool:
    return candidate.share > 0 and candidate.share >= top_share - SHARE_TOLERANCE


def rank(lines: pl.DataFrame, *, screen: bool = True) -> list[Candidate]:
    """Every candidate format scored on ``lines`` (a line frame), best first.

    Formats parsing about as many lines as the best one (within ``SHARE_TOLERANCE``) form the top tier, ranked
    by the fields a parsed line fills, then the preset's signature, then how many fields the format names
    (``combined_xff`` over ``combined`` over ``common``), then the share itself. A known line prefix
    (``PREFIXES``) found on most lines is also tried stripped; a format keeps its better reading.
    """
    content = _content(lines)
    results = _score(lines, None, screen=screen)
    for name, pattern in PREFIXES.items():
        found = content.select(pl.col("_raw").str.contains(f"^(?:{pattern})").mean()).item() if content.height else 0
        if found and found >= PREFIX_SHARE:
            results += _score(lines, name, screen=screen)
    top_share = max(c.share for c in results)
    ordered = sorted(results, key=lambda c: (c.key(_in_tier(c, top_share)), c.prefix is None), reverse=True)
    seen: set[str] = set()
    unique = []
    for candidate in ordered:  # a format once, with or without a prefix, whichever reads it better
        if candidate.name not in seen:
            seen.add(candidate.name)
            unique.append(candidate)
    return unique


def why(ranked: list[Candidate]) -> str | None:
    """Why the first format beats the runner-up when both parse about as many lines, or None."""
    if len(ranked) < 2:
        return None
    top, second = ranked[0], ranked[1]
    if not _in_tier(second, top.share):
        return None
    both = f"{top.name} and {second.name} both parse {min(top.share, second.share):.1%} of lines or more"
    if round(top.fields, 6) != round(second.fields, 6):
        return f"{both}; {top.name} fills {top.fields:.1f} fields per line, {second.name} {second.fields:.1f}"
    if round(top.signature, 6) != round(second.signature, 6):
        return (f"{both}; {top.signature:.1%} of lines have {top.name}'s own mark, "
                f"{second.signature:.1%} {second.name}'s")
    if top.declared != second.declared:
        return f"{both}; {top.name} is the more specific ({top.declared} fields named, {second.declared})"
    return f"{both}; {top.name} parses more of them"


def best(lines: pl.DataFrame, what: str) -> Candidate:
    """The single best format for ``lines``; ``InputError`` when nothing parses or two formats tie."""
    ranked = rank(lines)
    top = ranked[0]
    if top.share == 0:
        json_lines = _content(lines).select(pl.col("_raw").str.strip_chars_start().str.starts_with("{").mean()).item()
        if json_lines and json_lines > 0.5:
            raise InputError(f"{what}: its lines are JSON objects but no JSON preset reads them (caddy, nginx_json, "
                             "traefik, cloudflare); name their keys with format: nginx_json and source.fields")
        raise InputError(f"{what}: no known format parses its first lines; use format: regex with a pattern")
    tier = _in_tier(top, top.share)
    tied = [c.name for c in ranked if c.key(_in_tier(c, top.share)) == top.key(tier)]
    if len(tied) > 1:
        raise InputError(f"{what}: formats {', '.join(tied)} parse it equally well ({top.share:.0%} of lines); "
                         f"choose one with source.format")
    return top


# ``format: auto``: the format chosen for each file by its first chunk, reused for the file's later chunks.
_chosen: dict[str, tuple[str, str | None]] = {}


def parse(lines: pl.DataFrame, source: Source) -> pl.DataFrame:
    """``format: auto``: detect each file's format on its first chunk, then parse with it.

    The output has the canonical columns only (a format's extras such as W3C ``time_taken`` are left out), so
    every file of a run gives one schema whatever its format. A file no format parses, or on which two formats
    tie, stops the run with a message naming the file (the user then sets ``source.format``).
    """
    from dataclasses import replace

    from logmap.sources import accesslog

    if isinstance(lines, pl.LazyFrame):
        return parse(lines.collect(), source).lazy()
    if lines.height == 0:  # no file to look at: the columns every format gives
        return _canonical(accesslog.parse(lines, replace(source, format="combined")))
    parts = []
    for (file,), group in lines.group_by("_file", maintain_order=True):
        if file not in _chosen or group["_line"].min() == 1:
            chosen = best(group.head(SAMPLE_LINES), str(file))
            _chosen[str(file)] = (chosen.name, PREFIXES[chosen.prefix] if chosen.prefix else None)
        name, prefix = _chosen[str(file)]
        parts.append(_canonical(accesslog.parse(group, replace(source, format=name, prefix=source.prefix or prefix))))
    return pl.concat(parts, how="vertical")


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Provenance columns, then the canonical columns in their order; format extras left out."""
    from logmap.sources.accesslog import CANONICAL

    return frame.select(*[n for n in frame.columns if n not in CANONICAL and n != "time_taken"], *CANONICAL)
