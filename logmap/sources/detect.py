"""Name the access-log format of a sample of lines (``logmap formats --detect``, ``format: auto``).

Why it looks like this: the formats *are* their parsers, so detection just parses the first lines with every
preset and compares. A format's **share** is the part of the sample's content lines (neither blank nor a
``#`` directive, which no format turns into a record) it parses. Ranking is by share, then by how many
canonical fields a parsed line fills on average (a combined line also parses as ``common``, with fewer fields),
then by a JSON preset's signature key (``caddy``, ``nginx_json`` and ``traefik`` share one parser). Two formats
equal on all three are a tie: the caller must say so and let the user choose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import polars as pl

from logmap.errors import InputError
from logmap.mapping.model import Source
from logmap.sources.xff import TRAILING_XFF

SAMPLE_LINES = 1000
#: Presets sharing a parser (the JSON ones; w3c and cloudfront; combined and combined_xff) → a line only that server
#: writes: a sample without it scores lower for that preset.
SIGNATURES: dict[str, pl.Expr] = {
    "caddy": pl.col("_raw").str.json_path_match("$.request.uri").is_not_null(),
    "nginx_json": pl.col("_raw").str.json_path_match("$.remote_addr").is_not_null(),
    "traefik": pl.col("_raw").str.json_path_match("$.ClientHost").is_not_null(),
    "cloudfront": pl.col("_raw").str.starts_with("#Fields:") & pl.col("_raw").str.contains("x-edge-", literal=True),
    "w3c": pl.col("_raw").str.starts_with("#Fields:") & ~pl.col("_raw").str.contains("x-edge-", literal=True),
    "combined_xff": pl.col("_raw").str.contains(TRAILING_XFF),
    "combined": ~pl.col("_raw").str.contains(TRAILING_XFF),
}
_FIELDS = ("ip", "user", "time", "method", "path", "query", "protocol", "status", "bytes", "referrer",
           "user_agent", "vhost")


@dataclass(frozen=True)
class Candidate:
    """How well one format parses the sample."""

    name: str
    share: float      # parsed content lines / content lines
    fields: float     # mean non-null canonical fields per parsed line
    signature: float  # share of content lines carrying the preset's signature key (JSON presets), else 0

    @property
    def key(self) -> tuple[float, float, float]:
        return (round(self.share, 6), round(self.fields, 6), round(self.signature, 6))


def candidate_formats() -> list[str]:
    """Every preset detection tries (``regex``, ``nginx`` and ``apache`` need a pattern: never guessed)."""
    from logmap.sources.accesslog import known_formats

    return [name for name in known_formats() if name not in ("regex", "auto", "nginx", "apache")]


def rank(lines: pl.DataFrame) -> list[Candidate]:
    """Every candidate format scored on ``lines`` (a line frame), best first."""
    from logmap.sources import accesslog

    raw = pl.col("_raw")
    content = lines.filter((raw.str.strip_chars() != "") & ~raw.str.starts_with("#"))
    total = max(content.height, 1)
    results = []
    for name in candidate_formats():
        parsed = accesslog.parse(lines, Source(format=name)).filter(pl.col("_drop").is_null())
        ok = parsed.filter(~pl.col("_raw").str.starts_with("#"))
        filled = (ok.select(pl.sum_horizontal(*(pl.col(f).is_not_null() for f in _FIELDS))).to_series().mean()
                  if ok.height else 0.0)
        signature = 0.0
        if name in SIGNATURES:
            signature = lines.select(SIGNATURES[name].sum()).item() / max(lines.height, 1)
        results.append(Candidate(name, ok.height / total, float(cast(float, filled) or 0.0), signature))
    return sorted(results, key=lambda c: c.key, reverse=True)


def best(lines: pl.DataFrame, what: str) -> Candidate:
    """The single best format for ``lines``; ``InputError`` when nothing parses or two formats tie."""
    ranked = rank(lines)
    top = ranked[0]
    if top.share == 0:
        raise InputError(f"{what}: no known format parses its first lines; use format: regex with a pattern")
    tied = [c.name for c in ranked if c.key == top.key]
    if len(tied) > 1:
        raise InputError(f"{what}: formats {', '.join(tied)} parse it equally well ({top.share:.0%} of lines); "
                         f"choose one with source.format")
    return top


# ``format: auto``: the format chosen for each file by its first chunk, reused for the file's later chunks.
_chosen: dict[str, str] = {}


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
            _chosen[str(file)] = best(group.head(SAMPLE_LINES), str(file)).name
        parts.append(_canonical(accesslog.parse(group, replace(source, format=_chosen[str(file)]))))
    return pl.concat(parts, how="vertical")


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Provenance columns, then the canonical columns in their order; format extras left out."""
    from logmap.sources.accesslog import CANONICAL

    return frame.select(*[n for n in frame.columns if n not in CANONICAL and n != "time_taken"], *CANONICAL)
