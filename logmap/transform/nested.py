"""References into nested export data: key/value arrays and lists of structs (see docs/mapping.md).

Placeholder: resolves nothing yet; `Scope.resolve` calls it after plain and struct-path columns.
"""

from __future__ import annotations

import polars as pl


def resolve_nested(name: str, schema: dict[str, pl.DataType]):  # -> Compiled | None
    return None
