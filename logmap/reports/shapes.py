"""Path shapes: generalise URL paths so that the pages no rule matches group into the rules the user is missing.

``/product/123-red-shoe`` and ``/product/98-blue-hat`` are one missing rule, not two: each path segment that looks
like an id, a hash, a uuid or a slug is replaced by a placeholder, and the dry-run report counts shapes instead
of paths. Everything is a polars expression applied per segment (split on ``/``), so a chunk of millions of
dropped rows is generalised in Rust; callers apply it to *distinct* paths and join the counts back.

Placeholders, tried in this order on each segment (first match wins):

====================  ==============================================  =====================
placeholder           segment                                         example
====================  ==============================================  =====================
``{uuid}``            a UUID                                          ``550e8400-e29b-…``
``{id}``              digits only                                     ``1956``
``{id}-{slug}``       digits, a hyphen, then anything                 ``1956-trail-merino``
``{slug}-{id}``       words joined by hyphens, ending in digits       ``trail-merino-1956``
``{hash}``            hex of 8+ chars, or a 16+ char token, mixing    ``9f86d081884c7d65``
                      letters and digits
``{slug}``            three or more words joined by ``-`` or ``_``    ``how-to-lace-boots``
``{n}``               any remaining run of 2+ digits inside a         ``page2.html`` stays,
                      segment                                         ``img_0042.html`` →
                                                                      ``img_{n}.html``
====================  ==============================================  =====================

Short words (``shoes``, ``about-us``) are kept: they are what distinguishes one missing rule from another.

Percent escapes are never split: a word may be made of escapes (``%D8%B3%D8%B4-%D9%85%D8%AF%D9%84-pr257`` is a
``{slug}-{id}`` like its Latin counterpart), ``{n}`` only replaces digits outside escapes (``%D9%85`` keeps its
``85``), and a shape cut at ``MAX_SHAPE_CHARS`` drops a partial escape at its end. People read paths and shapes
percent-decoded (``display_path``), computed once per distinct value shown.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote

import polars as pl

#: Longest shape kept; longer ones are cut (with an ellipsis) so that a garbage path cannot bloat a report.
MAX_SHAPE_CHARS = 200

#: A letter of a word: ASCII, or a percent escape of a UTF-8 byte (non-Latin words arrive encoded).
_LETTER = r"(?:[A-Za-z]|%[89A-Fa-f][0-9A-Fa-f])"
_CHAR = r"(?:[A-Za-z0-9]|%[89A-Fa-f][0-9A-Fa-f])"
_UUID = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
_DIGITS = r"^\d+$"
_ID_SLUG = r"^\d+[-_].+$"
_SLUG_ID = rf"^{_LETTER}{_CHAR}*(?:[-_]{_CHAR}+)*[-_]\d+$"
_HEX = r"^[0-9A-Fa-f]{8,}$"
_TOKEN = r"^[A-Za-z0-9_-]{16,}$"
_SLUG = rf"^{_CHAR}+(?:[-_]{_CHAR}+){{2,}}$"
_DIGIT_RUN = r"\d{2,}"
_ESCAPE_MARK = "%\x00\x00"  # put before a segment so that every '%'-separated part starts with two escape chars


def _segment_shape(segment: pl.Expr) -> pl.Expr:
    """The placeholder for one path segment (an element of the split path), or the segment with digit runs
    replaced."""
    mixed = segment.str.contains(r"\d") & segment.str.contains(r"[A-Za-z]")
    return (
        pl.when(segment.str.contains(_UUID)).then(pl.lit("{uuid}"))
        .when(segment.str.contains(_DIGITS)).then(pl.lit("{id}"))
        .when(segment.str.contains(_ID_SLUG)).then(pl.lit("{id}-{slug}"))
        .when(segment.str.contains(_SLUG_ID)).then(pl.lit("{slug}-{id}"))
        .when(mixed & (segment.str.contains(_HEX) | segment.str.contains(_TOKEN))).then(pl.lit("{hash}"))
        .when(segment.str.contains(_SLUG)).then(pl.lit("{slug}"))
        .otherwise(_digit_runs(segment))
    )


def _digit_runs(segment: pl.Expr) -> pl.Expr:
    """Runs of 2+ digits replaced by ``{n}``, except the two hex digits of each percent escape: the segment is
    split on ``%`` and each part keeps its first two characters (the escape's) before the replacement."""
    parts = (pl.lit(_ESCAPE_MARK) + segment).str.split("%").list.slice(1)
    shaped = parts.list.eval(pl.element().str.slice(0, 2)
                             + pl.element().str.slice(2).str.replace_all(_DIGIT_RUN, "{n}", literal=False))
    return pl.concat_str([pl.lit("%"), shaped.list.join("%")]).str.strip_prefix(_ESCAPE_MARK)


def path_shape(path: pl.Expr) -> pl.Expr:
    """Generalise a path column (no query string) into its shape: ``/product/123-red-shoe`` →
    ``/product/{id}-{slug}``. Null stays null."""
    shape = path.str.split("/").list.eval(_segment_shape(pl.element())).list.join("/")
    too_long = shape.str.len_chars() > MAX_SHAPE_CHARS
    cut = shape.str.slice(0, MAX_SHAPE_CHARS - 1).str.replace(r"%[0-9A-Fa-f]?$", "")
    return pl.when(too_long).then(cut + pl.lit("…")).otherwise(shape)


def display_path(value: str | None) -> str | None:
    """A path, shape or URL as a person reads it: percent escapes decoded when they spell valid UTF-8 (``+``
    stays), kept as they are otherwise; control and formatting characters (a decoded ``%0A``, a bidi override)
    are shown escaped, so a decoded path can neither break a line nor reorder the text around it."""
    if value is None or "%" not in value:
        return value
    try:
        decoded = unquote(value, errors="strict")
    except UnicodeDecodeError:
        return value
    return "".join("".join(f"%{byte:02X}" for byte in c.encode()) if unicodedata.category(c) in ("Cc", "Cf")
                   else c for c in decoded)


def path_of_url(url: pl.Expr) -> pl.Expr:
    """The path of an absolute or relative URL (scheme, host, query and fragment removed); used where only the
    record's ``context.page.url`` is left (rows dropped as invalid after the record stage)."""
    relative = url.str.replace(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", "")
    path = relative.str.extract(r"^([^?#]*)", 1)
    return pl.when(path == "").then(pl.lit("/")).otherwise(path)


def shape_counts(paths: pl.Series | pl.DataFrame, *, path_column: str = "path") -> pl.DataFrame:
    """Count rows per shape, with the most frequent raw path of each shape as an example.

    Shapes are computed once per distinct path, then summed: a chunk of identical paths costs one regex pass.
    Returns columns ``shape``, ``count`` (UInt64) and ``example``, most frequent first.
    """
    frame = paths.to_frame(path_column) if isinstance(paths, pl.Series) else paths.select(path_column)
    distinct = (frame.filter(pl.col(path_column).is_not_null())
                .group_by(path_column).agg(pl.len().cast(pl.UInt64).alias("count")))
    shaped = distinct.with_columns(path_shape(pl.col(path_column)).alias("shape"))
    return (shaped.sort(["count", path_column], descending=[True, False])
            .group_by("shape", maintain_order=True)
            .agg(pl.col("count").sum(), pl.col(path_column).first().alias("example"))
            .sort(["count", "shape"], descending=[True, False]))
