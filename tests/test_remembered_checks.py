"""What a process remembers between runs (a valid mapping document, a mapping that compiled against a source's
columns) never lets a mapping through that the check would stop: a change to what the check reads is a new
check, with the same error as a process that never saw the first mapping."""

from __future__ import annotations

from dataclasses import replace

import pytest

from logmap.errors import MappingError
from logmap.pipeline.stages import Prepared
from logmap.sources import load_mapping_text

GOOD = """\
logmap: 1
source: {format: combined}
identity: {anonymous_id: {hmac: ['{ip}'], key: none}}
rules:
  - {name: product, path: '^/product/(?P<id>\\d+)', type: product_detail_page_view, product_ids: ['{id}']}
"""


def test_a_remembered_valid_document_does_not_pass_an_invalid_one() -> None:
    load_mapping_text(GOOD, "m.yaml")
    load_mapping_text(GOOD, "m.yaml")  # remembered
    with pytest.raises(MappingError, match="unknown interaction type 'product_view'"):
        load_mapping_text(GOOD.replace("product_detail_page_view", "product_view"), "m.yaml")


def test_a_remembered_compile_check_does_not_pass_a_changed_mapping() -> None:
    mapping = load_mapping_text(GOOD, "m.yaml")
    Prepared(mapping)
    Prepared(mapping)  # remembered
    rule = mapping.rules[0]
    mapping.rules[0] = replace(rule, fields={**rule.fields, "product_ids": ["{sku}"]})
    with pytest.raises(MappingError, match="unknown field 'sku'"):
        Prepared(mapping)
    # a source whose columns differ is a new check too: a regex source's extra groups are columns
    with_sku = replace(mapping.source, format="regex", pattern=r"(?P<ip>\S+) (?P<path>\S+) (?P<sku>\S+)")
    Prepared(mapping := replace(mapping, source=with_sku))
    without_sku = replace(with_sku, pattern=r"(?P<ip>\S+) (?P<path>\S+) (?P<other>\S+)")
    with pytest.raises(MappingError, match="unknown field 'sku'"):
        Prepared(replace(mapping, source=without_sku))
