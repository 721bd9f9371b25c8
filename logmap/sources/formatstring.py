"""nginx ``log_format`` and Apache ``LogFormat`` strings compiled to a parser (``format: nginx`` / ``apache``).

Why it looks like this: a server's own format string is the exact description of its lines, so the user pastes
it as ``source.pattern`` rather than writing a regular expression. The string is compiled once (plain Python
over the *format*, never over lines) into a regular expression with named groups, which then goes through the
``regex`` source of ``logmap.sources.accesslog``: same columnar matching, same normalisation, same ledger.

Variables with a canonical meaning get the canonical name (``$remote_addr``/``%h`` → ``ip``, ``$request``/
``%r`` → ``request``, ``$time_local``/``%t`` → ``time``…); every other variable becomes a field of its own name
(``$request_time`` → ``request_time``, ``%{X-Forwarded-For}i`` → ``x_forwarded_for``, ``%D`` → ``duration_us``)
usable in templates. A field enclosed in double quotes may contain spaces and ``\\"`` escapes; an unquoted one
is one token. A variable used twice is captured once (the first time). A space in the format string matches a
run of spaces in the line (padded fields).
"""

from __future__ import annotations

import re
from typing import TypeVar

import polars as pl

from logmap.errors import MappingError
from logmap.mapping.model import Source

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

CLF = "%d/%b/%Y:%H:%M:%S %z"
ISO = "%Y-%m-%dT%H:%M:%S%:z"

NGINX_FIELDS: dict[str, str] = {
    "remote_addr": "ip", "binary_remote_addr": "ip", "realip_remote_addr": "ip", "remote_user": "user",
    "time_local": "time", "time_iso8601": "time", "request": "request", "status": "status",
    "body_bytes_sent": "bytes", "bytes_sent": "bytes", "http_referer": "referrer", "http_user_agent": "user_agent",
    "host": "vhost", "server_name": "vhost", "http_host": "vhost", "request_method": "method",
    "request_uri": "target", "uri": "path", "document_uri": "path", "args": "query", "query_string": "query",
    "server_protocol": "protocol",
}
APACHE_FIELDS: dict[str, str] = {
    "h": "ip", "a": "ip", "l": "ident", "u": "user", "t": "time", "r": "request", "s": "status", "b": "bytes",
    "B": "bytes", "v": "vhost", "V": "vhost", "p": "port", "U": "path", "q": "query", "m": "method",
    "H": "protocol", "D": "duration_us", "T": "duration_s", "I": "bytes_in", "O": "bytes_out", "X": "conn_status",
}
APACHE_HEADERS: dict[str, str] = {"referer": "referrer", "user-agent": "user_agent", "host": "vhost"}

_NGINX_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_APACHE_DIRECTIVE = re.compile(r"%([<>]?)!?[0-9,]*(?:\{([^}]*)\})?([<>]?)([A-Za-z%])")


def compile_nginx(template: str) -> tuple[str, str]:
    """An nginx ``log_format`` string → (regular expression, time format)."""
    pieces: list[tuple[str, str | None]] = []  # (literal, field) pairs
    last = 0
    for match in _NGINX_VAR.finditer(template):
        name = match.group(1) or match.group(2)
        pieces.append((template[last:match.start()], NGINX_FIELDS.get(name, name)))
        last = match.end()
    pieces.append((template[last:], None))
    time_format = ISO if "$time_iso8601" in template or "${time_iso8601}" in template else CLF
    return _assemble(pieces), time_format


def compile_apache(template: str) -> tuple[str, str]:
    """An Apache ``LogFormat`` string → (regular expression, time format). ``%t`` includes its brackets."""
    pieces: list[tuple[str, str | None]] = []
    last = 0
    for match in _APACHE_DIRECTIVE.finditer(template):
        argument, letter = match.group(2), match.group(4)
        literal = template[last:match.start()]
        last = match.end()
        if letter == "%":
            pieces.append((literal + "%", None))
            continue
        if letter == "t":
            if argument:
                raise ValueError(f"%{{{argument}}}t (a custom time format) is not supported; use format: regex")
            pieces.append((literal + "[", "time"))
            pieces.append(("]", None))
            continue
        if letter in "io" and argument:
            header = argument.lower()
            field = APACHE_HEADERS.get(header, re.sub(r"[^a-z0-9]+", "_", header).strip("_"))
            field = field if letter == "i" else f"resp_{field}"
        elif letter in APACHE_FIELDS:
            field = APACHE_FIELDS[letter]
        else:
            raise ValueError(f"unsupported directive {match.group(0)!r}")
        pieces.append((literal, field))
    pieces.append((template[last:], None))
    return _assemble(pieces), CLF


def _assemble(pieces: list[tuple[str, str | None]]) -> str:
    """Literals escaped; each field captured by a group whose shape depends on what encloses it."""
    out, seen = ["^"], set()
    for i, (literal, field) in enumerate(pieces):
        out.append(re.escape(literal).replace("\\ ", " +"))  # a padded field (runs of spaces) still matches
        if field is None:
            continue
        following = pieces[i + 1][0] if i + 1 < len(pieces) else ""
        if literal.endswith('"') and following.startswith('"'):
            body = r'[^"\\]*(?:\\.[^"\\]*)*'
        elif literal.endswith("[") and following.startswith("]"):
            body = r"[^\]]*"
        elif field == "time":
            body = r"\S+(?: [+-]\d{4})?"
        else:
            body = r"\S*"
        out.append(f"(?P<{field}>{body})" if field not in seen else f"(?:{body})")
        seen.add(field)
    out.append(r"(?:[ \t].*)?$")  # fields appended later (as the NCSA presets allow)
    return "".join(out)


def compile_source(source: Source) -> tuple[str, str]:
    """(regex, time format) for a ``nginx``/``apache`` source; ``MappingError`` for a missing or bad string."""
    if not source.pattern:
        raise MappingError(f"format '{source.format}' needs a 'pattern': the server's log format string",
                           key="source.pattern")
    try:
        compiled = compile_nginx(source.pattern) if source.format == "nginx" else compile_apache(source.pattern)
    except ValueError as error:
        raise MappingError(f"the {source.format} format string: {error}", key="source.pattern") from None
    if "(?P<" not in compiled[0]:
        raise MappingError(f"the {source.format} format string names no field", key="source.pattern")
    return compiled


def parse(lines: Frame, source: Source) -> Frame:
    """Parse with the compiled regular expression through the ``regex`` source (same normalisation, ledger)."""
    from dataclasses import replace

    from logmap.sources import accesslog

    pattern, time_format = compile_source(source)
    label = f"format '{source.format}'"
    out = accesslog.parse(lines, replace(source, format="regex", pattern=pattern,
                                         time_format=source.time_format or time_format))
    detail = pl.col("_detail").str.replace("line does not match the source pattern", f"line does not match {label}",
                                           literal=True)
    return out.with_columns(detail.alias("_detail"))
