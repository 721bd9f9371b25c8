"""The `identity` section: `user_id`, and `anonymous_id` as a keyed hash.

A bare hash of an IPv4 address plus a user agent can be reversed by enumerating the 2^32 addresses, so the
default is HMAC-SHA256 with a key the user keeps. Hashing runs once per distinct input, not per row.
"""

from __future__ import annotations

import hashlib
import hmac

import polars as pl

from logmap.mapping.model import Identity, KeyedHash, Where
from logmap.transform.expressions import Scope, as_string, compile_template

SEPARATOR = "\x1f"  # unit separator: cannot occur in a parsed log field, so ("a b","c") ≠ ("a","b c")


#: Digests a Hasher remembers across chunks (a visitor's pair recurs chunk after chunk); past this the memory
#: is started afresh, so that a month of logs with millions of visitors does not grow it without end.
KNOWN_LIMIT = 200_000


class Hasher:
    """Hex HMAC-SHA256 with ``key``, or plain SHA-256 when ``key`` is None (``key: none`` in the mapping)."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key
        self._known: dict[str, str] = {}

    def __repr__(self) -> str:  # the key must never show up in a log or traceback
        return f"Hasher(keyed={self._key is not None})"

    def digest(self, text: str) -> str:
        data = text.encode("utf-8", "surrogatepass")
        if self._key is None:
            return hashlib.sha256(data).hexdigest()
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def series(self, values: pl.Series) -> pl.Series:
        """The digest of each of ``values`` (null for null), each distinct value digested once.

        The values (an IP and a user agent: ~130 bytes) are hashed by polars once, to 64-bit integers; finding the
        distinct ones and mapping them back then works on those. Every value is compared with the distinct
        value its integer stands for, so a collision of two values on one integer cannot mix up two visitors:
        it falls back to mapping the text itself.
        """
        hashes = values.hash()
        first = hashes.is_first_distinct()
        distinct = values.filter(first)
        index = hashes.replace_strict(hashes.filter(first), pl.int_range(distinct.len(), dtype=pl.UInt32, eager=True))
        if not distinct.gather(index).eq_missing(values).all():
            distinct = values.unique()
            index = values.replace_strict(distinct, pl.int_range(distinct.len(), dtype=pl.UInt32, eager=True))
        texts = distinct.to_list()
        if len(self._known) + len(texts) > KNOWN_LIMIT:
            self._known = {}
        for text in texts:
            if text is not None and text not in self._known:
                self._known[text] = self.digest(text)
        digests = pl.Series([None if t is None else self._known[t] for t in texts], dtype=pl.String)
        return digests.gather(index)


def keyed_hash(spec: KeyedHash, scope: Scope, where: Where | None, hasher: Hasher | None) -> pl.Expr:
    """The hex hash of a spec's templates joined with U+001F; null when every template is."""
    parts = [as_string(compile_template(t, scope, where)) for t in spec.hmac]
    joined = pl.concat_str([p.fill_null("") for p in parts], separator=SEPARATOR)
    any_part = pl.any_horizontal([p.is_not_null() for p in parts])
    assert hasher is not None, "a keyed hash needs a Hasher"
    hashed = joined.map_batches(hasher.series, return_dtype=pl.String, is_elementwise=True)
    return pl.when(any_part).then(hashed)


def identity_columns(identity: Identity, scope: Scope, hasher: Hasher | None,
                     user_hasher: Hasher | None = None) -> dict[str, pl.Expr]:
    """``r:user_id``, ``r:anonymous_id`` and ``_visitor`` (user id, else anonymous id) expressions; ``hasher``
    hashes the anonymous id, ``user_hasher`` a hashed user id."""
    user_id = pl.lit(None, pl.String)
    if identity.user_id:
        user_id = as_string(compile_template(identity.user_id, scope, identity.where_of("user_id")))
    elif identity.user_id_hash is not None:
        user_id = keyed_hash(identity.user_id_hash, scope, identity.where_of("user_id"), user_hasher)
    anonymous_id = pl.lit(None, pl.String)
    spec = identity.anonymous_id
    if spec is not None and spec.template:
        anonymous_id = as_string(compile_template(spec.template, scope, identity.where_of("anonymous_id")))
    elif spec is not None and spec.hmac:
        anonymous_id = keyed_hash(spec, scope, identity.where_of("anonymous_id"), hasher)
    return {
        "r:user_id": user_id,
        "r:anonymous_id": anonymous_id,
    }


VISITOR = pl.coalesce(pl.col("r:user_id"), pl.col("r:anonymous_id")).alias("_visitor")
