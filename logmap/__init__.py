"""logmap: web analytics history → validated interaction records.

The library API (what the CLI calls)::

    from logmap import load_mapping, convert
    result = convert(["access.log.gz"], "mappings/storefront-combined.yaml", "out/")
    result.ledger.balanced
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "convert", "iter_batches", "iter_records", "load_mapping"]


def __getattr__(name: str):
    # Lazy imports keep `import logmap` (and `logmap --help`) fast.
    if name in {"convert", "iter_batches", "iter_records"}:
        from logmap import pipeline

        return getattr(pipeline, name)
    if name == "load_mapping":
        from logmap.mapping.loader import load_mapping

        return load_mapping
    raise AttributeError(name)
