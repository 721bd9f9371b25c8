"""Generate the warehouse-unload and extra-tool fixtures in ``fixtures/exports/<name>/`` (deterministic).

``make_export_fixtures.py`` renders one simulated shop in each tool's native export shape; this script renders
the same shop as the tables teams actually unload from their warehouse, where nested data is **JSON text**, and
in the shapes of the tools added for issue #12. Every shape follows the tool's published schema (cited per
writer and in each folder's ``SOURCES.md``); the one real sample, Snowplow's own e-commerce test events
(Apache-2.0), is vendored verbatim and re-expressed in the other two Snowplow shapes.

* ``snowplow-warehouse/``: the real events (``csv/``, verbatim), the same events as the Analytics SDK's JSON
  (``sdk-json/``: nested, ``_1`` names, empty fields left out) and as Parquet with JSON-text contexts
  (``parquet/``: ``_1`` names, Snowflake's). One ``expected.ndjson`` for all three.
* ``snowplow-csv/``: the simulated shop as ``atomic.events`` unloaded to CSV (``_1_0_0`` names, JSON text), with
  page pings and an event delivered twice.
* ``ga4-2021/``: GA4 export tables as of the public sample e-commerce dataset (2020-11 … 2021-01): no
  ``collected_traffic_source``, ``is_active_user`` nor item parameters; and one sparse NDJSON day without any
  commerce event (``items`` always empty).
* ``ga4-fivetran/``: Fivetran's GA4 Export connector ``EVENT`` table, Columns sync mode, unloaded to CSV.
* ``segment-warehouse/``, ``rudderstack-warehouse/``: ``pages`` and per-event tables as CSV (``products`` JSON
  text); RudderStack also in Snowflake's UPPER_CASE layout.
* ``amplitude-csv/``: Amplitude's warehouse export as CSV with JSON-text ``event_properties``.
* ``mixpanel/``: the raw export API's NDJSON.
* ``adobe-datafeed/``: a data feed delivery: headerless ``hit_data.tsv.gz``, ``column_headers.tsv``, ``event.tsv``.

    python scripts/make_warehouse_fixtures.py            # inputs and summaries
    python scripts/make_warehouse_fixtures.py --golden   # also expected.ndjson (needs logmap)
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_export_fixtures import (
    BROWSERS,
    OUT,
    RECORD_TYPE,
    Event,
    _gzip,
    _write_ndjson,
    ga4_rows,
    simulate,
    snowplow_rows,
    write_golden,
)

Summary = dict[str, Any]


def _summary(input_rows: int, types: Counter[str], dropped: Counter[str], files: list[str]) -> Summary:
    return {"input_rows": input_rows, "records_per_type": dict(sorted(types.items())),
            "dropped": dict(sorted(dropped.items())), "files": files}


def _write_csv(path: Path, header: list[str], rows: list[list[Any]], compress: bool = False,
               delimiter: str = ",") -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = buffer.getvalue().encode("utf-8")
    path.write_bytes(_gzip(buffer.getvalue()) if compress else data)


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _warehouse_time(time: datetime) -> str:
    """Redshift / Snowflake unload of a TIMESTAMP: no offset (UTC), microseconds."""
    return time.strftime("%Y-%m-%d %H:%M:%S.%f")


def _rows_to_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    return header, [[row.get(k) for k in header] for row in rows]


# --- Snowplow: the real sample ----------------------------------------------------------------------------------

SP_REAL = OUT / "snowplow-warehouse"
SP_REAL_CSV = "csv/snowplow_ecommerce_events.csv.gz"   # vendored verbatim (gzipped): see SOURCES.md
SP_ACTION_TYPE = {"product_view": "product_detail_page_view", "list_view": "impression",
                  "add_to_cart": "add_to_cart", "remove_from_cart": "remove_from_cart", "transaction": "checkout",
                  "refund": "refund", "list_click": "click", "promo_view": "impression", "promo_click": "click"}
SP_NUMBERS = {"price", "quantity", "revenue", "total_quantity", "shipping", "tax", "position", "list_price",
              "step", "refund_amount", "eventIndex", "sessionIndex", "discount_amount"}


def _short_name(column: str) -> str:
    """``contexts_com_acme_x_1_0_0`` (BigQuery / Databricks loaders) → ``contexts_com_acme_x_1`` (SDK, Snowflake)."""
    parts = column.rsplit("_", 3)
    if column.startswith(("contexts_", "unstruct_event_")) and len(parts) == 4 and all(p.isdigit() for p in parts[1:]):
        return f"{parts[0]}_{parts[1]}"
    return column


def _typed(entity: Any) -> Any:
    """The seed stores every entity field as text; the tracker sent numbers where the schema says number."""
    if isinstance(entity, list):
        return [_typed(e) for e in entity]
    if isinstance(entity, dict):
        return {k: (float(v) if k in SP_NUMBERS and isinstance(v, str) else _typed(v)) for k, v in entity.items()}
    return entity


def _sdk_value(column: str, text: str) -> Any:
    if column.startswith(("contexts_", "unstruct_event_")):
        return _typed(json.loads(text))
    if column.endswith("tstamp"):
        return text.replace(" ", "T").replace("+00:00", "") + ("" if text.endswith("Z") else "Z")
    if column in {"domain_sessionidx", "page_urlport", "refr_urlport"}:
        return int(text)
    if column in {"geo_latitude", "geo_longitude"}:
        return float(text)
    return text


def snowplow_real() -> Summary:
    """The Snowplow e-commerce accelerator's test events in the three shapes, and what the mapping must give."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    text = gzip.decompress((SP_REAL / SP_REAL_CSV).read_bytes()).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    # Analytics SDK JSON: nested, `_1` names, empty fields left out (as the SDKs' transform does)
    sdk = [{_short_name(k): _sdk_value(k, v) for k, v in row.items() if v not in ("", "[]")} for row in rows]
    _write_ndjson(SP_REAL / "sdk-json/part-00000.ndjson.gz", sdk, True)
    # Parquet from a Snowflake unload: `_1` names, contexts as JSON text in string columns
    columns = {_short_name(k): [row[k] or None for row in rows] for k in rows[0]}
    pq.write_table(pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()}),
                   SP_REAL / "parquet/part-00000.parquet", compression="zstd")
    types: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for row in rows:
        action = json.loads(row[next(k for k in row if k.startswith("unstruct_event_"))] or "null")
        kind = SP_ACTION_TYPE.get((action or {}).get("type"))
        if kind:
            types[kind] += 1
        else:
            dropped["unmatched"] += 1   # checkout_step and events without an action
    return _summary(len(rows), types, dropped, [SP_REAL_CSV])


# --- Snowplow: the simulated shop as an atomic.events CSV unload ------------------------------------------------

def snowplow_csv(events: list[Event]) -> Summary:
    """``atomic.events`` from the BigQuery loader unloaded to CSV: `_1_0_0` names, entities as JSON text."""
    rows, types, dropped = snowplow_rows(events)
    # page pings: engaged time (heartbeat 10 s) on the page view they follow; records come from page views only
    flat = []
    for row in rows:
        out = {}
        for key, value in row.items():
            name = key + "_0_0" if key.startswith(("contexts_", "unstruct_event_")) else key
            out[name] = _json_text(value) if isinstance(value, (list, dict)) else value
        for key in ("collector_tstamp", "derived_tstamp", "dvce_created_tstamp", "etl_tstamp"):
            out[key] = out[key].replace("T", " ").rstrip("Z")
        flat.append(out)
    flat.append(dict(flat[7]))   # delivered twice (at-least-once): the same event_id, dropped as a duplicate
    dropped["duplicate"] += 1
    header, table = _rows_to_table(flat)
    name = "atomic_events_000.csv.gz"
    _write_csv(OUT / "snowplow-csv" / name, header, table, compress=True)
    return _summary(len(flat), types, dropped, [name])


# --- GA4: the 2020-21 schema (the public sample e-commerce dataset) and sparse NDJSON ----------------------------

GA4_2021_DROPPED_COLUMNS = ("collected_traffic_source", "is_active_user")


def ga4_2021(events: list[Event]) -> Summary:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from make_export_fixtures import _ga4_schema

    rows, types, dropped = ga4_rows(events)
    schema = _ga4_schema()
    for name in GA4_2021_DROPPED_COLUMNS:
        schema = schema.remove(schema.get_field_index(name))
    old = [{k: v for k, v in row.items() if k not in GA4_2021_DROPPED_COLUMNS} for row in rows]
    first_day = min(r["event_date"] for r in old)
    parquet_rows = [r for r in old if r["event_date"] == first_day]
    folder = OUT / "ga4-2021"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(parquet_rows, schema=schema), folder / "events_20240301.parquet",
                   compression="zstd")
    # a day unloaded as NDJSON by `bq extract` without commerce events: keys with null values are left out,
    # `items` is always [] (a null-typed list), `ecommerce` never appears
    later = [r for r in old if r["event_date"] != first_day and not r["items"] and r["ecommerce"] is None]

    def sparse(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: sparse(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [sparse(v) for v in value]
        return value

    _write_ndjson(folder / "ndjson/events_20240302.ndjson.gz", [sparse(r) for r in later], True)
    kept = {id(r) for r in parquet_rows + later}
    types: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for row, original, event in zip(old, rows, _ga4_events(events), strict=True):
        if id(row) not in kept:
            continue
        if original["user_pseudo_id"] is None or original["event_timestamp"] is None:
            dropped["missing:user_pseudo_id" if original["user_pseudo_id"] is None else "missing:event_timestamp"] += 1
        elif event.kind == "noise":
            dropped["unmatched"] += 1
        else:
            types[RECORD_TYPE[event.kind]] += 1
    return _summary(len(kept), types, dropped, ["events_20240301.parquet", "ndjson/events_20240302.ndjson.gz"])


# --- GA4 through Fivetran (Columns sync mode) -------------------------------------------------------------------

def ga4_fivetran(events: list[Event]) -> Summary:
    """Fivetran's GA4 Export connector, Columns mode: each event param becomes a column ``param_<key>`` (typed by
    the value set), each user property ``user_property_<key>``; records are unwrapped into
    ``<record>_<field>`` columns; items go to a separate ``ITEM`` table, so the ``EVENT`` table has no item ids.
    https://fivetran.com/docs/connectors/applications/google-analytics-4-export#columnsmode"""
    rows, types, dropped = ga4_rows(events)
    out = []
    for row in rows:
        flat: dict[str, Any] = {"_fivetran_id": f"ft-{len(out):06d}"}
        for key, value in row.items():
            if key in {"event_params", "user_properties"}:
                prefix = "param_" if key == "event_params" else "user_property_"
                for entry in value:
                    typed = entry["value"]
                    flat[prefix + entry["key"]] = next((typed[t] for t in ("string_value", "int_value",
                                                                         "double_value", "float_value")
                                                        if typed.get(t) is not None), None)
            elif key == "items":
                continue
            elif isinstance(value, dict):
                for field, inner in value.items():
                    if isinstance(inner, dict):
                        for leaf, v in inner.items():
                            flat[f"{key}_{field}_{leaf}"] = v
                    else:
                        flat[f"{key}_{field}"] = inner
            elif key not in {"ecommerce", "collected_traffic_source"} or value is not None:
                flat[key] = value
        flat["_fivetran_synced"] = "2024-03-06 02:00:00.000"
        out.append(flat)
    # without items, GA4 item events carry no product: the mapping keeps what needs no product id or finds it
    # in the page URL (product pages)
    types = Counter()
    dropped = Counter({k: v for k, v in dropped.items() if k.startswith("missing:")})
    for row, event in zip(rows, _ga4_events(events), strict=True):
        if row["user_pseudo_id"] is None or row["event_timestamp"] is None:
            continue
        kind = FIVETRAN_KIND.get(event.kind)
        if kind:
            types[kind] += 1
        else:
            dropped["unmatched"] += 1
    header, table = _rows_to_table(out)
    name = "event.csv.gz"
    _write_csv(OUT / "ga4-fivetran" / name, header, table, compress=True)
    return _summary(len(out), types, dropped, [name])


#: What still makes a record without item ids (docs/exports.md, "GA4 through Fivetran"): page views by path,
#: product pages by the id in their URL, searches, lists by name, purchases with their revenue.
FIVETRAN_KIND = {"home": "home_page_view", "category": "category_page_view", "product": "product_detail_page_view",
                 "search": "search", "list": "category_page_view", "purchase": "checkout"}


def _ga4_events(events: list[Event]) -> list[Event]:
    """The event behind each row ``ga4_rows`` writes (its two extra broken rows copy rows 5 and 6)."""
    return list(events) + [events[5], events[6]]


# --- Segment and RudderStack warehouses -------------------------------------------------------------------------

SEGMENT_TABLE = {"product": "product_viewed", "list": "product_list_viewed", "search": "products_searched",
                 "add": "product_added", "remove": "product_removed", "purchase": "order_completed",
                 "refund": "order_refunded", "wishlist": "product_added_to_wishlist", "select": "product_clicked",
                 "promo": "promotion_viewed"}


def _warehouse_rows(events: list[Event], upper: bool = False) -> tuple[dict[str, list[dict[str, Any]]],
                                                                        Counter[str], Counter[str]]:
    """Segment's (and RudderStack's) warehouse schema: ``pages`` and one table per track event, properties as
    snake_case columns, arrays (``products``) as JSON text, ``context`` flattened to ``context_*``.
    https://segment.com/docs/connections/storage/warehouses/schema/,
    https://www.rudderstack.com/docs/destinations/warehouse-destinations/warehouse-schema/"""
    from make_export_fixtures import segment_rows

    messages, types, dropped = segment_rows(events)
    tables: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        if message["type"] == "identify":
            continue   # the identifies table: not read by the mapping, so not in the fixture
        context, page = message["context"], message["context"]["page"]
        row: dict[str, Any] = {
            "id": message["messageId"], "anonymous_id": message["anonymousId"], "user_id": message["userId"],
            "context_ip": context["ip"], "context_library_name": context["library"]["name"],
            "context_library_version": context["library"]["version"], "context_locale": context["locale"],
            "context_page_path": page["path"], "context_page_referrer": page["referrer"] or None,
            "context_page_title": page["title"], "context_page_url": page["url"],
            "context_user_agent": context["userAgent"],
            "original_timestamp": _warehouse_time(_parse(message["originalTimestamp"])),
            "received_at": _warehouse_time(_parse(message["receivedAt"])),
            "sent_at": _warehouse_time(_parse(message["sentAt"])),
            "timestamp": _warehouse_time(_parse(message["timestamp"])),
        }
        if message["type"] == "page":
            table = "pages"
            row.update(name=message["name"], path=page["path"], referrer=page["referrer"] or None,
                       search=page["search"] or None, title=page["title"], url=page["url"])
        else:
            table = message["event"].lower().replace(" ", "_")
            row.update(event=table, event_text=message["event"])
            for key, value in message["properties"].items():
                row[key] = _json_text(value) if isinstance(value, (list, dict)) else value
        row["uuid_ts"] = row["received_at"]
        if upper:
            row = {k.upper(): v for k, v in row.items()}
        tables.setdefault(table.upper() if upper else table, []).append(row)
    dropped["unmatched"] -= sum(1 for m in messages if m["type"] == "identify")
    dropped = +dropped
    return tables, types, dropped


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _write_tables(folder: Path, tables: dict[str, list[dict[str, Any]]], prefix: str = "") -> list[str]:
    files = []
    for table, rows in sorted(tables.items()):
        header, data = _rows_to_table(rows)
        name = f"{prefix}{table}.csv.gz"
        _write_csv(folder / name, header, data, compress=True)
        files.append(name)
    return files


def segment_warehouse(events: list[Event]) -> Summary:
    tables, types, dropped = _warehouse_rows(events)
    # at-least-once delivery: one message loaded twice (the same id), as Segment's dedupe window can miss
    tables["product_added"].append(dict(tables["product_added"][0]))
    dropped["duplicate"] += 1
    files = _write_tables(OUT / "segment-warehouse", tables)
    return _summary(sum(len(t) for t in tables.values()), types, dropped, files)


def rudderstack_warehouse(events: list[Event]) -> Summary:
    lower, types, dropped = _warehouse_rows(events)
    upper, _, _ = _warehouse_rows(events, upper=True)
    files = _write_tables(OUT / "rudderstack-warehouse", lower, "redshift/")
    files += _write_tables(OUT / "rudderstack-warehouse", upper, "snowflake/")
    rows = sum(len(t) for t in lower.values())
    # both layouts hold the same events: the summary counts one layout (each is converted on its own)
    return {**_summary(rows, types, dropped, [f for f in files if f.startswith("redshift/")]),
            "snowflake_files": [f for f in files if f.startswith("snowflake/")]}


# --- Amplitude warehouse CSV, Mixpanel raw export ---------------------------------------------------------------

def amplitude_csv(events: list[Event]) -> Summary:
    """Amplitude's warehouse export (Snowflake / Redshift / BigQuery) unloaded to CSV: the export's keys as
    lower-case columns, ``event_properties`` and ``user_properties`` as JSON text.
    https://amplitude.com/docs/data/destination-catalog/snowflake#schema"""
    from make_export_fixtures import amplitude_rows

    rows, types, dropped = amplitude_rows(events)
    out = []
    for row in rows:
        flat = {k.lstrip("$"): (_json_text(v) if isinstance(v, (dict, list)) else v) for k, v in row.items()}
        out.append(flat)
    header, table = _rows_to_table(out)
    name = "events_123456_000.csv.gz"
    _write_csv(OUT / "amplitude-csv" / name, header, table, compress=True)
    return _summary(len(out), types, dropped, [name])


MIXPANEL_EVENT = {"home": "$mp_web_page_view", "category": "$mp_web_page_view", "product": "Product Viewed",
                  "list": "Product List Viewed", "search": "Products Searched", "add": "Product Added",
                  "remove": "Product Removed", "purchase": "Order Completed", "refund": "Order Refunded",
                  "wishlist": "Product Added to Wishlist", "select": "Product Clicked",
                  "promo": "Promotion Viewed", "noise": "$identify"}


def mixpanel(events: list[Event]) -> Summary:
    """The raw export API (``/api/2.0/export``): JSONL of ``{"event", "properties"}`` with ``time`` in Unix
    seconds, ``distinct_id``, ``$insert_id``, ``$current_url``, ``$referrer``, ``$browser``, ``$os``, ``mp_lib``;
    ecommerce events with Segment-style names and properties (Mixpanel has no fixed ecommerce taxonomy).
    https://developer.mixpanel.com/reference/raw-event-export"""
    rows = []
    types: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for index, event in enumerate(events):
        browser = BROWSERS[event.browser]
        properties: dict[str, Any] = {
            "time": int(event.time.timestamp()), "distinct_id": event.user_id or f"$device:{event.anonymous_id}",
            "$device_id": event.anonymous_id, "$insert_id": f"mp-{index:08x}", "$current_url": event.url,
            "$browser": browser[0], "$os": browser[3], "mp_lib": "web", "$lib_version": "2.50.0",
            "mp_processing_time_ms": int(event.time.timestamp() * 1000) + 900,
        }
        if event.referrer:
            properties["$referrer"] = event.referrer
        if event.user_id:
            properties["$user_id"] = event.user_id
        if event.campaign:
            properties.update(utm_source=event.campaign[0], utm_medium=event.campaign[1],
                              utm_campaign=event.campaign[2])
        if event.items:
            product, quantity = event.items[0]
            properties.update(product_id=product.id, quantity=quantity, price=product.price)
            properties["products"] = [{"product_id": p.id, "quantity": q, "price": p.price} for p, q in event.items]
        if event.term:
            properties["query"] = event.term
        if event.list_name:
            properties["category"] = event.list_name.title()
        if event.kind in {"purchase", "refund"}:
            properties.update(order_id=event.order_id, revenue=event.revenue)
        rows.append({"event": MIXPANEL_EVENT[event.kind], "properties": properties})
        if event.kind == "noise":
            dropped["unmatched"] += 1
        else:
            types[RECORD_TYPE[event.kind]] += 1
    rows.append(json.loads(json.dumps(rows[11])))   # the same $insert_id twice: Mixpanel's own dedupe key
    dropped["duplicate"] += 1
    name = "export_2024-03-01_2024-03-05.jsonl.gz"
    _write_ndjson(OUT / "mixpanel" / name, rows, True)
    return _summary(len(rows), types, dropped, [name])


# --- Adobe Analytics data feed ----------------------------------------------------------------------------------

#: Adobe's standard event lookup (event.tsv): numeric ids in ``post_event_list``.
ADOBE_EVENTS = {"1": "Purchase", "2": "Product View", "10": "Shopping Cart Open", "11": "Shopping Cart Checkout",
                "12": "Shopping Cart Add", "13": "Shopping Cart Remove", "14": "Shopping Cart View",
                "100": "Instance of eVar1", "200": "Instance of eVar2", "20100": "Custom Event 1",
                "20101": "Custom Event 2"}
ADOBE_KIND_EVENTS = {"product": "2", "add": "12", "remove": "13", "purchase": "1", "wishlist": "20101",
                     "search": "20100"}
ADOBE_COLUMNS = ["accept_language", "browser", "c_color", "campaign", "carrier", "channel", "connection_type",
                 "cookies", "country", "currency", "date_time", "domain", "duplicate_purchase", "evar1", "evar2",
                 "event_list", "exclude_hit", "first_hit_page_url", "first_hit_pagename", "geo_city",
                 "geo_country", "geo_region", "hier1", "hit_source", "hit_time_gmt", "hitid_high", "hitid_low",
                 "homepage", "ip", "j_jscript", "java_enabled", "javascript", "language", "last_hit_time_gmt",
                 "last_purchase_num", "mcvisid", "os", "page_event", "page_type", "page_url", "pagename",
                 "post_campaign", "post_evar1", "post_evar2", "post_event_list", "post_page_event",
                 "post_page_url", "post_pagename", "post_product_list", "post_purchaseid", "post_referrer",
                 "post_visid_high", "post_visid_low", "post_visid_type", "product_list", "purchaseid", "referrer",
                 "resolution", "user_agent", "visit_num", "visit_page_num", "visit_start_time_gmt"]


def adobe_datafeed(events: list[Event]) -> Summary:
    """A data feed delivery (https://experienceleague.adobe.com/docs/analytics/export/analytics-data-feed/):
    ``hit_data.tsv`` has no header (the names are in ``column_headers.tsv``), tab-separated with backslash
    escapes; ``post_event_list`` holds numeric event ids looked up in ``event.tsv``; ``post_product_list`` is
    ``category;product;quantity;price;events;evars`` per product, products separated by commas; the visitor
    is ``post_visid_high`` + ``post_visid_low``; ``exclude_hit`` > 0 and ``hit_source`` 5, 7, 8, 9 are not
    visits of a person."""
    rows = []
    types: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for index, event in enumerate(events):
        row = dict.fromkeys(ADOBE_COLUMNS)
        epoch = int(event.time.timestamp())
        visid = 3000000000000000000 + event.user * 7919
        products = ",".join(
            f"{p.category.title()};{p.id};{q if event.kind in {'purchase', 'add', 'remove'} else ''};"
            f"{p.price * q if event.kind == 'purchase' else ''};;" for p, q in event.items) or None
        kind_event = ADOBE_KIND_EVENTS.get(event.kind)
        event_list = kind_event
        if event.kind == "purchase":
            event_list = "1,11"
        if event.kind == "add":
            event_list = "12,10" if index % 4 == 0 else "12"
        row.update(
            accept_language="en-US,en;q=0.9", browser="1", country="73", currency="USD",
            date_time=event.time.strftime("%Y-%m-%d %H:%M:%S"), exclude_hit="0", hit_source="1",
            hit_time_gmt=str(epoch), hitid_high=str(4000000 + index), hitid_low=str(9000000 + index),
            ip=f"192.0.2.{event.user % 250 + 1}", language="1", mcvisid=f"{visid:038d}",
            page_url=event.url, pagename=event.title, post_page_url=event.url, post_pagename=event.title,
            post_event_list=event_list, event_list=event_list, post_product_list=products, product_list=products,
            post_purchaseid=event.order_id if event.kind == "purchase" else None,
            post_referrer=event.referrer, referrer=event.referrer, post_visid_high=str(visid >> 32),
            post_visid_low=str(visid & 0xFFFFFFFF), post_visid_type="3", user_agent=BROWSERS[event.browser][5],
            visit_num=str(event.session_number), visit_page_num=str(index % 40 + 1),
            post_evar1=event.term, evar1=event.term,
            post_page_event="0" if event.kind in {"home", "category", "product", "search"} else "100",
        )
        if event.kind == "refund":
            continue   # Adobe has no refund hit (refunds are imported as data sources, dropped below)
        rows.append(row)
        if event.kind in {"home", "category", "product", "search", "add", "remove", "purchase", "wishlist"}:
            types[RECORD_TYPE[event.kind]] += 1
        else:
            dropped["unmatched"] += 1   # list, select, promo, noise: custom links without a standard event
    # rows a feed holds that are no visit of a person
    rows.append(dict(rows[3], exclude_hit="4", hitid_low="1"))   # excluded by a bot rule / IP filter
    dropped["filtered:exclude_hit"] += 1
    rows.append(dict(rows[4], hit_source="5", hitid_low="2", post_visid_high="0", post_visid_low="0"))
    dropped["filtered:hit_source"] += 1   # a data-source upload (hit_source 5)
    table = [[_adobe_escape(row[c]) for c in ADOBE_COLUMNS] for row in rows]
    folder = OUT / "adobe-datafeed"
    buffer = io.StringIO()
    for line in table:
        buffer.write("\t".join(line) + "\n")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "01-shop_2024-03-01.tsv.gz").write_bytes(_gzip(buffer.getvalue()))
    lookup = folder   # the lookup_data archive extracted beside the hit data, where header_file is looked for
    (lookup / "column_headers.tsv").write_text("\t".join(ADOBE_COLUMNS) + "\n")
    (lookup / "event.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in ADOBE_EVENTS.items()))
    return _summary(len(rows), types, dropped, ["01-shop_2024-03-01.tsv.gz"])


def _adobe_escape(value: Any) -> str:
    if value is None:
        return ""
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


# --- main ------------------------------------------------------------------------------------------------------

#: fixture folder → (shipped mapping, writer). Writers without events read the vendored real sample.
WRITERS: dict[str, tuple[str, Callable[..., Summary]]] = {
    "snowplow-warehouse": ("snowplow-enriched.yaml", snowplow_real),
    "snowplow-csv": ("snowplow-enriched.yaml", snowplow_csv),
    "ga4-2021": ("ga4-bigquery-export.yaml", ga4_2021),
    "ga4-fivetran": ("ga4-fivetran.yaml", ga4_fivetran),
    "segment-warehouse": ("segment-warehouse.yaml", segment_warehouse),
    "rudderstack-warehouse": ("rudderstack-warehouse.yaml", rudderstack_warehouse),
    "amplitude-csv": ("amplitude-export.yaml", amplitude_csv),
    "mixpanel": ("mixpanel-export.yaml", mixpanel),
    "adobe-datafeed": ("adobe-datafeed.yaml", adobe_datafeed),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--golden", action="store_true", help="also write expected.ndjson with the shipped mappings")
    parser.add_argument("only", nargs="*", help="fixture folders to write (default: all)")
    args = parser.parse_args(argv)
    events = simulate()
    for folder, (mapping, write) in WRITERS.items():
        if args.only and folder not in args.only:
            continue
        summary = write() if folder == "snowplow-warehouse" else write(events)
        (OUT / folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if args.golden:
            write_golden(folder, summary, mapping)
        print(f"{folder}: {summary['input_rows']} rows, {sum(summary['records_per_type'].values())} records",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
