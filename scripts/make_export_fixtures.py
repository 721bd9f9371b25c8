"""Generate the analytics-export fixtures in ``fixtures/exports/<tool>/`` (deterministic: same bytes every run).

One simulated shop — users, sessions, complete shopping flows — is rendered in each tool's published export
shape, with nested types preserved:

* ``ga4/``: GA4 BigQuery export (``events_YYYYMMDD`` tables) as Parquet, one file per day: ``event_params`` and
  ``user_properties`` as ``ARRAY<STRUCT<key, value STRUCT<string_value, int_value, float_value, double_value>>>``,
  ``items`` as ``ARRAY<STRUCT<item_id, item_name, …, quantity, price>>``, ``ecommerce``, ``traffic_source``,
  ``device``, ``geo``, ``privacy_info``, ``collected_traffic_source``
  (https://support.google.com/analytics/answer/7029846).
* ``segment/``: Segment's raw message spec (track/page/identify) as gzipped NDJSON, the S3 destination's shape,
  ecommerce events of the Ecommerce v2 spec with ``properties.products[]``
  (https://segment.com/docs/connections/spec/ecommerce/v2/).
* ``snowplow/``: Snowplow enriched events as the Analytics SDK's JSON (one NDJSON line per event): atomic
  fields plus ``unstruct_event_…`` and ``contexts_…`` columns of the ecommerce plugin
  (snowplow_ecommerce_action, product, transaction, refund) and site_search.
* ``amplitude/``: Amplitude's Export API JSON (gzipped NDJSON per hour) with ``event_properties`` /
  ``user_properties``.

Each folder also gets ``summary.json``: the records each mapping should produce per type and the rows it should
drop per reason, counted here from the simulated shop (independently of logmap), which the tests compare with
the ledger. ``expected.ndjson`` (the golden records) is written by ``--golden`` after the mappings convert the
inputs; review its diff like code.

    python scripts/make_export_fixtures.py            # inputs and summaries
    python scripts/make_export_fixtures.py --golden   # also expected.ndjson (needs logmap installed)
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fixtures" / "exports"
SITE = "https://shop.example.com"
START = datetime(2024, 3, 1, 8, 0, 0, tzinfo=UTC)
DAYS = 3
SEED = 20240301

CATEGORIES = {
    "shoes": ["Trail Runner", "City Sneaker", "Hiking Boot", "Sandal"],
    "jackets": ["Rain Shell", "Down Parka", "Fleece Zip"],
    "bags": ["Day Pack", "Tote", "Duffel"],
    "hats": ["Beanie", "Sun Cap"],
}
BROWSERS = [
    ("Chrome", "124.0", "desktop", "Windows", "10",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
    ("Safari", "17.4", "mobile", "iOS", "17.4",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
     "Mobile/15E148 Safari/604.1"),
    ("Firefox", "125.0", "desktop", "Linux", "",
     "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"),
]
GEOS = [("Paris", "France", "Europe", "Ile-de-France"), ("Berlin", "Germany", "Europe", "Berlin"),
        ("Austin", "United States", "Americas", "Texas")]
CAMPAIGNS = [("newsletter", "email", "spring_sale"), ("google", "cpc", "brand"), ("instagram", "social", "new_in")]
SEARCH_TERMS = ["rain jacket", "trail shoes", "beanie", "duffel bag", "waterproof"]


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    category: str
    price: float
    brand: str


def _catalog() -> list[Product]:
    products = []
    number = 1000
    for category, names in CATEGORIES.items():
        for name in names:
            for variant in ("", " Pro"):
                number += 7
                price = round(19.0 + (number % 13) * 7.5 + (15 if variant else 0), 2)
                products.append(Product(f"SKU-{number}", name + variant, category, price, "Northwind"))
    return products


@dataclass
class Event:
    """One thing a visitor did on the shop, before any tool's shape is applied."""

    time: datetime
    user: int
    session: int
    session_number: int
    kind: str                   # home, category, product, list, search, add, remove, purchase, refund, wishlist,
    #                             select, promo, noise
    url: str
    referrer: str | None
    title: str
    user_id: str | None
    anonymous_id: str
    items: list[tuple[Product, int]] = field(default_factory=list)
    term: str | None = None
    order_id: str | None = None
    revenue: float | None = None
    list_name: str | None = None
    campaign: tuple[str, str, str] | None = None
    engagement_ms: int | None = None
    browser: int = 0
    geo: int = 0
    ga4_form: str = ""          # GA4 only: how this page visit was tagged (page_view or an ecommerce event)


def simulate(seed: int = SEED, users: int = 64) -> list[Event]:
    """Sessions of browsing, searching, carts, purchases, refunds and wishlists for ``users`` visitors."""
    rng = random.Random(seed)
    catalog = _catalog()
    events: list[Event] = []
    orders: list[Event] = []
    for user in range(users):
        anonymous = f"{rng.getrandbits(32):010d}.{1709251200 + user * 37}"
        logged_in = f"u{1000 + user}" if user % 3 == 0 else None
        browser, geo = user % len(BROWSERS), user % len(GEOS)
        for number in range(1, 2 + user % 3):
            start = START + timedelta(days=rng.randrange(DAYS), minutes=rng.randrange(0, 14 * 60),
                                      seconds=rng.randrange(60))
            session = int(start.timestamp())
            campaign = CAMPAIGNS[rng.randrange(len(CAMPAIGNS))] if rng.random() < 0.4 else None
            clock = [start]
            previous: list[str | None] = [None]

            def emit(kind: str, url: str, title: str, **extra: Any) -> Event:
                clock[0] += timedelta(seconds=rng.randint(4, 90), milliseconds=rng.randrange(1000))
                event = Event(clock[0], user, session, number, kind, url, previous[0], title,
                              logged_in if number > 1 else None, anonymous, browser=browser, geo=geo,
                              engagement_ms=rng.randint(800, 60000) if kind in PAGE_KINDS else None, **extra)
                if kind in PAGE_KINDS:
                    previous[0] = url.split("?")[0] if "?" in url else url
                events.append(event)
                return event

            landing = SITE + "/"
            if campaign:
                landing += f"?utm_source={campaign[0]}&utm_medium={campaign[1]}&utm_campaign={campaign[2]}"
            emit("home", landing, "Northwind Outfitters", campaign=campaign)
            emit("noise", landing, "Northwind Outfitters")
            cart: list[tuple[Product, int]] = []
            for _ in range(rng.randint(2, 5)):
                action = rng.random()
                if action < 0.25:
                    term = SEARCH_TERMS[rng.randrange(len(SEARCH_TERMS))]
                    emit("search", f"{SITE}/search?q={term.replace(' ', '+')}", f"Search: {term}", term=term)
                category = rng.choice(list(CATEGORIES))
                in_category = [p for p in catalog if p.category == category]
                emit("category", f"{SITE}/category/{category}", category.title(), list_name=category)
                shown = rng.sample(in_category, min(4, len(in_category)))
                emit("list", f"{SITE}/category/{category}", category.title(), list_name=category,
                     items=[(p, 1) for p in shown])
                if rng.random() < 0.3:
                    emit("promo", f"{SITE}/category/{category}", category.title(), items=[(shown[0], 1)],
                         list_name="spring_banner")
                product = rng.choice(shown)
                emit("select", f"{SITE}/category/{category}", category.title(), items=[(product, 1)],
                     list_name=category)
                emit("product", f"{SITE}/product/{product.id}", product.name, items=[(product, 1)])
                if rng.random() < 0.55:
                    quantity = rng.choice([1, 1, 1, 2, 3])
                    emit("add", f"{SITE}/product/{product.id}", product.name, items=[(product, quantity)])
                    cart.append((product, quantity))
                elif rng.random() < 0.3:
                    emit("wishlist", f"{SITE}/product/{product.id}", product.name, items=[(product, 1)])
            if len(cart) > 1 and rng.random() < 0.3:
                removed = cart.pop(rng.randrange(len(cart)))
                emit("remove", f"{SITE}/cart", "Cart", items=[removed])
            if cart and rng.random() < 0.7:
                revenue = round(sum(p.price * q for p, q in cart), 2)
                order = emit("purchase", f"{SITE}/checkout/complete", "Thank you", items=list(cart),
                             order_id=f"T-{user:03d}-{number}", revenue=revenue)
                orders.append(order)
    # a purchase with exactly three items (the acceptance case), on the first day
    catalog3 = [catalog[0], catalog[9], catalog[17]]
    three = Event(START + timedelta(hours=2, seconds=17, milliseconds=345), 999, 1709258400, 1,
                  "purchase", f"{SITE}/checkout/complete", f"{SITE}/cart", "Thank you", "u-three",
                  "4242424242.1709258000",
                  items=[(catalog3[0], 1), (catalog3[1], 2), (catalog3[2], 3)], order_id="T-THREE",
                  revenue=round(catalog3[0].price + 2 * catalog3[1].price + 3 * catalog3[2].price, 2))
    events.append(three)
    for order in orders[::6]:  # some orders are refunded two days later
        events.append(Event(order.time + timedelta(days=2), order.user, order.session, order.session_number,
                            "refund", f"{SITE}/account/orders", None, "Orders", order.user_id, order.anonymous_id,
                            items=list(order.items), order_id=order.order_id, revenue=order.revenue,
                            browser=order.browser, geo=order.geo))
    events.sort(key=lambda e: (e.time, e.user))
    for index, event in enumerate(events):  # GA4: page visits tagged either way (never both, see docs/exports.md)
        event.ga4_form = "page_view" if index % 2 == 0 else "ecommerce"
    return events


PAGE_KINDS = {"home", "category", "product", "search"}

#: Record type each kind yields in every shipped mapping.
RECORD_TYPE = {
    "home": "home_page_view", "category": "category_page_view", "product": "product_detail_page_view",
    "list": "category_page_view", "search": "search", "add": "add_to_cart", "remove": "remove_from_cart",
    "purchase": "checkout", "refund": "refund", "wishlist": "add_to_collection", "select": "click",
    "promo": "impression",
}


def _micros(time: datetime) -> int:
    return int(time.timestamp() * 1_000_000)


def _iso(time: datetime) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time.microsecond // 1000:03d}Z"


def _path(url: str) -> str:
    rest = url.split("://", 1)[1]
    path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    return path.split("?")[0]


def _query(url: str) -> str:
    return url.split("?", 1)[1] if "?" in url else ""


def _gzip(text: str) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as handle:
        handle.write(text.encode("utf-8"))
    return buffer.getvalue()


def _write_ndjson(path: Path, rows: list[dict[str, Any]], compress: bool, extra_lines: list[str] = ()) -> None:
    text = "".join(json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n" for row in rows)
    text += "".join(line + "\n" for line in extra_lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_gzip(text) if compress else text.encode("utf-8"))


# --- GA4 BigQuery export ----------------------------------------------------------------------------------------

def _param(key: str, value: Any) -> dict[str, Any]:
    typed = {"string_value": None, "int_value": None, "float_value": None, "double_value": None}
    if isinstance(value, bool) or isinstance(value, str):
        typed["string_value"] = str(value)
    elif isinstance(value, int):
        typed["int_value"] = value
    else:
        typed["double_value"] = float(value)
    return {"key": key, "value": typed}


GA4_ITEM_FIELDS = ["item_id", "item_name", "item_brand", "item_variant", "item_category", "item_category2",
                   "item_category3", "item_category4", "item_category5", "price_in_usd", "price", "quantity",
                   "item_revenue_in_usd", "item_revenue", "item_refund_in_usd", "item_refund", "coupon",
                   "affiliation", "location_id", "item_list_id", "item_list_name", "item_list_index",
                   "promotion_id", "promotion_name", "creative_name", "creative_slot"]


def _ga4_item(product: Product, quantity: int, index: int, list_name: str | None, kind: str) -> dict[str, Any]:
    item = dict.fromkeys(GA4_ITEM_FIELDS)
    revenue = round(product.price * quantity, 2) if kind == "purchase" else None
    item.update(item_id=product.id, item_name=product.name, item_brand=product.brand, item_variant="(not set)",
                item_category=product.category.title(), price_in_usd=product.price, price=product.price,
                quantity=quantity, item_revenue_in_usd=revenue, item_revenue=revenue,
                item_refund=revenue if kind == "refund" else None, item_list_name=list_name,
                item_list_index=str(index + 1) if list_name else None,
                promotion_name="Spring banner" if kind == "promo" else None)
    return item


GA4_EVENT = {"home": "page_view", "category": "page_view", "product": "page_view", "search": "view_search_results",
             "list": "view_item_list", "add": "add_to_cart", "remove": "remove_from_cart", "purchase": "purchase",
             "refund": "refund", "wishlist": "add_to_wishlist", "select": "select_item", "promo": "view_promotion",
             "noise": "user_engagement"}


def ga4_rows(events: list[Event]) -> tuple[list[dict[str, Any]], Counter[str], Counter[str]]:
    rows: list[dict[str, Any]] = []
    types: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    previous: dict[int, int] = {}
    for index, event in enumerate(events):
        name = GA4_EVENT[event.kind]
        if event.kind == "product" and event.ga4_form == "ecommerce":
            name = "view_item"          # a quick view: view_item without a page_view
        if event.kind == "search" and index % 3 == 0:
            name = "search"             # the site's own search event, besides enhanced measurement
        params = [_param("page_location", event.url), _param("page_title", event.title),
                  _param("ga_session_id", event.session), _param("ga_session_number", event.session_number),
                  _param("session_engaged", "1")]
        if event.referrer:
            params.append(_param("page_referrer", event.referrer))
        if event.engagement_ms is not None:
            params.append(_param("engagement_time_msec", event.engagement_ms))
        if event.term:
            params.append(_param("search_term", event.term))
        if event.kind in {"purchase", "refund"}:
            params += [_param("transaction_id", event.order_id), _param("value", event.revenue),
                       _param("currency", "USD")]
        if event.list_name and event.kind in {"list", "select", "promo", "category"}:
            params.append(_param("item_list_name", event.list_name))
        ecommerce = None
        if event.items and event.kind != "category":
            quantity = sum(q for _, q in event.items)
            ecommerce = {"total_item_quantity": quantity, "purchase_revenue_in_usd": None, "purchase_revenue": None,
                         "refund_value_in_usd": None, "refund_value": None, "shipping_value_in_usd": None,
                         "shipping_value": None, "tax_value_in_usd": None, "tax_value": None,
                         "unique_items": len(event.items), "transaction_id": event.order_id}
            if event.kind == "purchase":
                ecommerce.update(purchase_revenue_in_usd=event.revenue, purchase_revenue=event.revenue,
                                 shipping_value=0.0, tax_value=0.0)
            if event.kind == "refund":
                ecommerce.update(refund_value_in_usd=event.revenue, refund_value=event.revenue)
        browser = BROWSERS[event.browser]
        geo = GEOS[event.geo]
        timestamp = _micros(event.time)
        campaign = event.campaign
        row = {
            "event_date": event.time.strftime("%Y%m%d"),
            "event_timestamp": timestamp,
            "event_name": name,
            "event_params": params,
            "event_previous_timestamp": previous.get(event.user),
            "event_value_in_usd": event.revenue if event.kind == "purchase" else None,
            "event_bundle_sequence_id": 1000 + index,
            "event_server_timestamp_offset": 250_000 + index % 17,
            "user_id": event.user_id,
            "user_pseudo_id": event.anonymous_id,
            "privacy_info": {"analytics_storage": "Yes", "ads_storage": "No", "uses_transient_token": "No"},
            "user_properties": ([{"key": "customer_tier", "value": {"string_value": "gold", "int_value": None,
                                                                    "float_value": None, "double_value": None,
                                                                    "set_timestamp_micros": timestamp}}]
                                if event.user_id else []),
            "user_first_touch_timestamp": 1709251200000000 + event.user * 1_000_000,
            "user_ltv": {"revenue": 0.0, "currency": "USD"},
            "device": {"category": browser[2], "mobile_brand_name": "Apple" if browser[2] == "mobile" else None,
                       "mobile_model_name": "iPhone" if browser[2] == "mobile" else None,
                       "operating_system": browser[3], "operating_system_version": browser[4], "language": "en-us",
                       "is_limited_ad_tracking": "No", "browser": None, "browser_version": None,
                       "web_info": {"browser": browser[0], "browser_version": browser[1],
                                    "hostname": "shop.example.com"}},
            "geo": {"city": geo[0], "country": geo[1], "continent": geo[2], "region": geo[3],
                    "sub_continent": None, "metro": "(not set)"},
            "traffic_source": {"name": campaign[2] if campaign else "(direct)",
                               "medium": campaign[1] if campaign else "(none)",
                               "source": campaign[0] if campaign else "(direct)"},
            "stream_id": "4178203521",
            "platform": "WEB",
            "event_dimensions": {"hostname": "shop.example.com"},
            "ecommerce": ecommerce,
            "items": [_ga4_item(p, q, i, event.list_name, event.kind) for i, (p, q) in enumerate(event.items)],
            "collected_traffic_source": ({"manual_campaign_id": None, "manual_campaign_name": campaign[2],
                                          "manual_source": campaign[0], "manual_medium": campaign[1],
                                          "manual_term": None, "manual_content": None, "gclid": None,
                                          "dclid": None, "srsltid": None} if campaign else None),
            "is_active_user": True,
        }
        previous[event.user] = timestamp
        rows.append(row)
        if event.kind == "noise":
            dropped["unmatched"] += 1
        else:
            types[RECORD_TYPE[event.kind]] += 1
    # bad rows: no user_pseudo_id (consent mode), no timestamp
    broken = dict(rows[5], user_pseudo_id=None, event_name="page_view")
    rows.append(broken)
    dropped["missing:user_pseudo_id"] += 1
    no_time = dict(rows[6], event_timestamp=None, event_name="page_view")
    rows.append(no_time)
    dropped["missing:event_timestamp"] += 1
    return rows, types, dropped


def _ga4_schema():  # pyarrow schema following the BigQuery export
    import pyarrow as pa

    value = pa.struct([("string_value", pa.string()), ("int_value", pa.int64()), ("float_value", pa.float64()),
                       ("double_value", pa.float64())])
    user_value = pa.struct([*value, ("set_timestamp_micros", pa.int64())])
    item_types = {"price_in_usd": pa.float64(), "price": pa.float64(), "quantity": pa.int64(),
                  "item_revenue_in_usd": pa.float64(), "item_revenue": pa.float64(),
                  "item_refund_in_usd": pa.float64(), "item_refund": pa.float64()}
    item = pa.struct([(f, item_types.get(f, pa.string())) for f in GA4_ITEM_FIELDS])
    strings = lambda *names: pa.struct([(n, pa.string()) for n in names])  # noqa: E731
    return pa.schema([
        ("event_date", pa.string()), ("event_timestamp", pa.int64()), ("event_name", pa.string()),
        ("event_params", pa.list_(pa.struct([("key", pa.string()), ("value", value)]))),
        ("event_previous_timestamp", pa.int64()), ("event_value_in_usd", pa.float64()),
        ("event_bundle_sequence_id", pa.int64()), ("event_server_timestamp_offset", pa.int64()),
        ("user_id", pa.string()), ("user_pseudo_id", pa.string()),
        ("privacy_info", strings("analytics_storage", "ads_storage", "uses_transient_token")),
        ("user_properties", pa.list_(pa.struct([("key", pa.string()), ("value", user_value)]))),
        ("user_first_touch_timestamp", pa.int64()),
        ("user_ltv", pa.struct([("revenue", pa.float64()), ("currency", pa.string())])),
        ("device", pa.struct([*[(n, pa.string()) for n in (
            "category", "mobile_brand_name", "mobile_model_name", "operating_system", "operating_system_version",
            "language", "is_limited_ad_tracking", "browser", "browser_version")],
            ("web_info", strings("browser", "browser_version", "hostname"))])),
        ("geo", strings("city", "country", "continent", "region", "sub_continent", "metro")),
        ("traffic_source", strings("name", "medium", "source")),
        ("stream_id", pa.string()), ("platform", pa.string()),
        ("event_dimensions", strings("hostname")),
        ("ecommerce", pa.struct([("total_item_quantity", pa.int64()), ("purchase_revenue_in_usd", pa.float64()),
                                 ("purchase_revenue", pa.float64()), ("refund_value_in_usd", pa.float64()),
                                 ("refund_value", pa.float64()), ("shipping_value_in_usd", pa.float64()),
                                 ("shipping_value", pa.float64()), ("tax_value_in_usd", pa.float64()),
                                 ("tax_value", pa.float64()), ("unique_items", pa.int64()),
                                 ("transaction_id", pa.string())])),
        ("items", pa.list_(item)),
        ("collected_traffic_source", strings("manual_campaign_id", "manual_campaign_name", "manual_source",
                                             "manual_medium", "manual_term", "manual_content", "gclid", "dclid",
                                             "srsltid")),
        ("is_active_user", pa.bool_()),
    ])


def write_ga4_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=_ga4_schema())
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=1000)


def write_ga4(events: list[Event]) -> dict[str, Any]:
    rows, types, dropped = ga4_rows(events)
    folder = OUT / "ga4"
    for old in folder.glob("events_*.parquet"):
        old.unlink()
    days = sorted({r["event_date"] for r in rows})
    for day in days:
        write_ga4_parquet([r for r in rows if r["event_date"] == day], folder / f"events_{day}.parquet")
    return {"input_rows": len(rows), "records_per_type": dict(sorted(types.items())),
            "dropped": dict(sorted(dropped.items())), "files": [f"events_{d}.parquet" for d in days]}


# --- Segment ---------------------------------------------------------------------------------------------------

SEGMENT_EVENT = {"list": "Product List Viewed", "search": "Products Searched", "add": "Product Added",
                 "remove": "Product Removed", "purchase": "Order Completed", "refund": "Order Refunded",
                 "wishlist": "Product Added to Wishlist", "select": "Product Clicked", "promo": "Promotion Viewed",
                 "product": "Product Viewed"}


def _segment_product(product: Product, quantity: int, position: int | None = None) -> dict[str, Any]:
    out = {"product_id": product.id, "sku": product.id, "category": product.category.title(), "name": product.name,
           "brand": product.brand, "price": product.price, "quantity": quantity,
           "url": f"{SITE}/product/{product.id}"}
    if position is not None:
        out["position"] = position
    return out


def segment_rows(events: list[Event]) -> tuple[list[dict[str, Any]], Counter[str], Counter[str]]:
    rows: list[dict[str, Any]] = []
    types: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for index, event in enumerate(events):
        browser = BROWSERS[event.browser]
        page = {"path": _path(event.url), "referrer": event.referrer or "", "search": "?" + _query(event.url)
                if _query(event.url) else "", "title": event.title, "url": event.url}
        context = {"page": page, "userAgent": browser[5], "ip": f"203.0.113.{event.user % 250 + 1}",
                   "library": {"name": "analytics.js", "version": "next-1.64.0"}, "locale": "en-US"}
        if event.campaign:
            context["campaign"] = {"source": event.campaign[0], "medium": event.campaign[1],
                                   "name": event.campaign[2]}
        base = {"anonymousId": f"anon-{event.anonymous_id}", "userId": event.user_id, "context": context,
                "integrations": {}, "messageId": f"ajs-next-{index:06d}", "originalTimestamp": _iso(event.time),
                "receivedAt": _iso(event.time + timedelta(milliseconds=480)),
                "sentAt": _iso(event.time + timedelta(milliseconds=120)), "timestamp": _iso(event.time),
                "version": 2}
        if event.kind == "noise":
            rows.append({**base, "type": "identify", "traits": {"plan": "free"}})
            dropped["unmatched"] += 1
            continue
        if event.kind in {"home", "category"}:
            rows.append({**base, "type": "page", "name": "Home" if event.kind == "home" else "Category",
                         "properties": {**page}})
            types[RECORD_TYPE[event.kind]] += 1
            continue
        properties: dict[str, Any] = {}
        if event.kind == "product":
            product, _ = event.items[0]
            properties = {**_segment_product(product, 1), "currency": "USD", "value": product.price}
        elif event.kind == "list":
            properties = {"list_id": event.list_name, "category": event.list_name.title(),
                          "products": [_segment_product(p, q, i + 1) for i, (p, q) in enumerate(event.items)]}
        elif event.kind == "search":
            properties = {"query": event.term}
        elif event.kind in {"add", "remove", "wishlist", "select"}:
            product, quantity = event.items[0]
            properties = {**_segment_product(product, quantity), "cart_id": f"cart-{event.session}"}
            if event.kind == "wishlist":
                properties.update(wishlist_id="wl-1", wishlist_name="Favourites")
        elif event.kind == "promo":
            properties = {"promotion_id": "promo-spring", "creative": "spring_banner", "name": "Spring sale",
                          "position": "home_top"}
        elif event.kind in {"purchase", "refund"}:
            properties = {"order_id": event.order_id, "total": event.revenue, "revenue": event.revenue,
                          "currency": "USD", "products": [_segment_product(p, q) for p, q in event.items]}
            if event.kind == "purchase":
                properties.update(checkout_id=f"co-{event.order_id}", affiliation="web", shipping=0, tax=0)
        rows.append({**base, "type": "track", "event": SEGMENT_EVENT[event.kind], "properties": properties})
        types[RECORD_TYPE[event.kind]] += 1
    return rows, types, dropped


def write_segment(events: list[Event]) -> dict[str, Any]:
    rows, types, dropped = segment_rows(events)
    folder = OUT / "segment"
    days = sorted({r["timestamp"][:10] for r in rows})
    files = []
    broken = 0
    for number, day in enumerate(days):
        extra = []
        if number == 0:  # a truncated line, as a crashed writer leaves it
            extra = ['{"anonymousId":"anon-x","type":"track","event":"Product Viewed","properties":{"product_']
            broken += 1
        name = f"segment-logs/src_1a2b3c/{day.replace('-', '')}/events-{number:03d}.ndjson.gz"
        _write_ndjson(folder / name, [r for r in rows if r["timestamp"][:10] == day], True, extra)
        files.append(name)
    dropped["malformed"] += broken
    return {"input_rows": len(rows) + broken, "records_per_type": dict(sorted(types.items())),
            "dropped": dict(sorted(dropped.items())), "files": files}


# --- Snowplow ----------------------------------------------------------------------------------------------------

SP_ACTION = "unstruct_event_com_snowplowanalytics_snowplow_ecommerce_snowplow_ecommerce_action_1"
SP_PRODUCT = "contexts_com_snowplowanalytics_snowplow_ecommerce_product_1"
SP_TRANSACTION = "contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1"
SP_REFUND = "contexts_com_snowplowanalytics_snowplow_ecommerce_refund_1"
SP_SEARCH = "unstruct_event_com_snowplowanalytics_snowplow_site_search_1"
SP_WEB_PAGE = "contexts_com_snowplowanalytics_snowplow_web_page_1"
#: Snowplow's list_view is an impression of the listed products (its page entity does not say "category" here).
SNOWPLOW_RECORD_TYPE = {"list": "impression"}
SP_TYPE = {"product": "product_view", "list": "list_view", "add": "add_to_cart", "remove": "remove_from_cart",
           "purchase": "transaction", "refund": "refund", "select": "list_click", "promo": "promo_view"}


def snowplow_rows(events: list[Event]) -> tuple[list[dict[str, Any]], Counter[str], Counter[str]]:
    rows: list[dict[str, Any]] = []
    types: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    page_view_ids: dict[tuple[int, int], str] = {}   # (user, session) → the id of its latest page view
    for index, event in enumerate(events):
        browser = BROWSERS[event.browser]
        geo = GEOS[event.geo]
        query = _query(event.url)
        row: dict[str, Any] = {
            "app_id": "shop", "platform": "web", "etl_tstamp": _iso(event.time + timedelta(seconds=3)),
            "collector_tstamp": _iso(event.time + timedelta(milliseconds=300)),
            "dvce_created_tstamp": _iso(event.time), "event": "page_view",
            "event_id": f"{index:08x}-0000-4000-8000-{event.user:012x}", "name_tracker": "sp",
            "v_tracker": "js-3.23.0", "v_collector": "ssc-2.10.0-kinesis", "v_etl": "snowplow-enrich-kinesis-4.0.0",
            "user_id": event.user_id, "user_ipaddress": f"198.51.100.{event.user % 250 + 1}",
            "domain_userid": f"d{event.anonymous_id.replace('.', '')[:15]}", "domain_sessionidx": event.session_number,
            "network_userid": f"n-{event.user:05d}", "geo_country": geo[1][:2].upper(), "geo_city": geo[0],
            "page_url": event.url, "page_title": event.title, "page_referrer": event.referrer,
            "page_urlscheme": "https", "page_urlhost": "shop.example.com", "page_urlport": 443,
            "page_urlpath": _path(event.url), "page_urlquery": query or None,
            "mkt_medium": event.campaign[1] if event.campaign else None,
            "mkt_source": event.campaign[0] if event.campaign else None,
            "mkt_campaign": event.campaign[2] if event.campaign else None,
            "useragent": browser[5], "br_family": browser[0], "os_family": browser[3],
            "dvce_type": "Computer" if browser[2] == "desktop" else "Mobile", "dvce_ismobile": browser[2] == "mobile",
            "derived_tstamp": _iso(event.time), "event_vendor": "com.snowplowanalytics.snowplow",
            "event_name": "page_view", "event_format": "jsonschema", "event_version": "1-0-0",
            "domain_sessionid": f"{event.session:08x}-aaaa-4bbb-8ccc-{event.user:012x}",
            SP_WEB_PAGE: [{"id": f"{index:08x}-1111-4222-8333-444455556666"}],
        }
        if event.kind == "noise":   # a ping of the page view it follows: the web_page context's id ties them
            row.update(event="page_ping", event_name="page_ping", pp_xoffset_min=0, pp_xoffset_max=0,
                       pp_yoffset_min=0, pp_yoffset_max=1200)
            row[SP_WEB_PAGE] = [{"id": page_view_ids[event.user, event.session]}]
            dropped["merged:page_ping"] += 1
            rows.append(row)
            continue
        if event.kind in {"home", "category"}:
            page_view_ids[event.user, event.session] = row[SP_WEB_PAGE][0]["id"]
            types[SNOWPLOW_RECORD_TYPE.get(event.kind, RECORD_TYPE[event.kind])] += 1
            rows.append(row)
            continue
        row.update(event="unstruct", event_vendor="com.snowplowanalytics.snowplow.ecommerce",
                   event_name="snowplow_ecommerce_action", event_version="1-0-2")
        if event.kind == "search":
            row.update(event_vendor="com.snowplowanalytics.snowplow", event_name="site_search", event_version="1-0-0")
            row[SP_SEARCH] = {"terms": event.term.split(), "filters": {}, "totalResults": 12, "pageResults": 12}
        elif event.kind == "wishlist":  # no ecommerce action for wishlists: a structured event
            row.update(event="struct", event_vendor="com.google.analytics", event_name="event",
                       event_version="1-0-0", se_category="wishlist", se_action="add",
                       se_label=event.items[0][0].id, se_property="Favourites")
        else:
            row[SP_ACTION] = {"type": SP_TYPE[event.kind], "name": event.list_name}
            row[SP_PRODUCT] = [{"id": p.id, "name": p.name, "category": p.category.title(), "price": p.price,
                                "currency": "USD", "quantity": q, "brand": p.brand, "position": i + 1}
                               for i, (p, q) in enumerate(event.items)]
            if event.kind == "purchase":
                row[SP_TRANSACTION] = [{"transaction_id": event.order_id, "revenue": event.revenue,
                                        "currency": "USD", "payment_method": "card",
                                        "total_quantity": sum(q for _, q in event.items), "tax": 0, "shipping": 0}]
            if event.kind == "refund":
                row[SP_REFUND] = [{"transaction_id": event.order_id, "currency": "USD",
                                   "refund_amount": event.revenue, "refund_reason": "return"}]
        if event.kind == "select":
            row[SP_ACTION]["name"] = event.list_name
        types[SNOWPLOW_RECORD_TYPE.get(event.kind, RECORD_TYPE[event.kind])] += 1
        rows.append(row)
    return rows, types, dropped


def write_snowplow(events: list[Event]) -> dict[str, Any]:
    rows, types, dropped = snowplow_rows(events)
    # an event without domain_userid (a server-side tracker without the cookie): identified by network_userid
    rows.append(dict(rows[3], event_id="ffffffff-0000-4000-8000-000000000000", domain_userid=None, user_id=None))
    types[SNOWPLOW_RECORD_TYPE.get(events[3].kind, RECORD_TYPE[events[3].kind])] += 1
    name = "enriched/run=2024-03-04-00-00-00/part-00000.ndjson.gz"
    _write_ndjson(OUT / "snowplow" / name, rows, True)
    return {"input_rows": len(rows), "records_per_type": dict(sorted(types.items())),
            "dropped": dict(sorted(dropped.items())), "files": [name]}


# --- Amplitude ---------------------------------------------------------------------------------------------------

AMPLITUDE_EVENT = {"home": "Page Viewed", "category": "Page Viewed", "product": "Product Viewed",
                   "list": "Product List Viewed", "search": "Product Searched", "add": "Product Added",
                   "remove": "Product Removed", "purchase": "Order Completed", "refund": "Order Refunded",
                   "wishlist": "Product Added to Wishlist", "select": "Product Clicked", "promo": "Promotion Viewed",
                   "noise": "session_start"}


def amplitude_rows(events: list[Event]) -> tuple[list[dict[str, Any]], Counter[str], Counter[str]]:
    rows: list[dict[str, Any]] = []
    types: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for index, event in enumerate(events):
        browser = BROWSERS[event.browser]
        geo = GEOS[event.geo]
        when = event.time.strftime("%Y-%m-%d %H:%M:%S.%f")
        properties: dict[str, Any] = {"page_url": event.url, "page_path": _path(event.url),
                                      "page_title": event.title, "referrer": event.referrer}
        if event.items:
            product, quantity = event.items[0]
            properties.update(product_id=product.id, price=product.price, quantity=quantity,
                              category=product.category.title())
            properties["products"] = [{"product_id": p.id, "quantity": q, "price": p.price} for p, q in event.items]
        if event.term:
            properties["query"] = event.term
        if event.list_name:
            properties["list_name"] = event.list_name
        if event.kind in {"purchase", "refund"}:
            properties.update({"order_id": event.order_id, "$revenue": event.revenue, "revenue": event.revenue})
        row = {
            "$insert_id": f"ins-{index:06d}", "amplitude_id": 500000 + event.user, "app": 123456,
            "city": geo[0], "client_event_time": when, "client_upload_time": when, "country": geo[1],
            "data": {"path": "/2/httpapi"}, "device_family": browser[3], "device_id": f"dev-{event.anonymous_id}",
            "device_type": browser[2], "event_id": index, "event_properties": properties, "event_time": when,
            "event_type": AMPLITUDE_EVENT[event.kind], "group_properties": {}, "groups": {},
            "ip_address": f"192.0.2.{event.user % 250 + 1}", "language": "English", "library": "amplitude-ts/2.7.0",
            "os_name": browser[0], "os_version": browser[1], "platform": "Web",
            "processed_time": when, "region": geo[3], "server_received_time": when, "server_upload_time": when,
            "session_id": event.session * 1000, "user_id": event.user_id,
            "user_properties": {"initial_utm_source": event.campaign[0] if event.campaign else "EMPTY"},
            "uuid": f"{index:08x}-2222-4333-8444-{event.user:012x}", "version_name": None,
        }
        rows.append(row)
        if event.kind == "noise":
            dropped["unmatched"] += 1
        else:
            types[RECORD_TYPE[event.kind]] += 1
    return rows, types, dropped


def write_amplitude(events: list[Event]) -> dict[str, Any]:
    rows, types, dropped = amplitude_rows(events)
    folder = OUT / "amplitude"
    hours = sorted({r["event_time"][:10] for r in rows})
    files = []
    for day in hours:
        name = f"123456/123456_{day}_0#0.json.gz"
        _write_ndjson(folder / name, [r for r in rows if r["event_time"][:10] == day], True)
        files.append(name)
    return {"input_rows": len(rows), "records_per_type": dict(sorted(types.items())),
            "dropped": dict(sorted(dropped.items())), "files": files}


# --- main ------------------------------------------------------------------------------------------------------

TOOLS = {"ga4": ("ga4-bigquery-export.yaml", write_ga4), "segment": ("segment.yaml", write_segment),
         "snowplow": ("snowplow-enriched.yaml", write_snowplow), "amplitude": ("amplitude-export.yaml", write_amplitude)}


def write_golden(tool: str, summary: dict[str, Any], mapping: str | None = None) -> None:
    """Convert the tool's fixture with its shipped mapping and keep the records as ``expected.ndjson``."""
    import os
    import tempfile

    from logmap.conversion import convert

    folder = OUT / tool
    with tempfile.TemporaryDirectory() as tmp:
        convert([str(folder / f) for f in summary["files"]], ROOT / "mappings" / (mapping or TOOLS[tool][0]),
                Path(tmp) / "out", key=os.environ.get("LOGMAP_KEY", "fixture-key-not-secret"))
        records = [json.loads(line) for path in sorted((Path(tmp) / "out").glob("interactions-*.ndjson"))
                   for line in path.read_text(encoding="utf-8").splitlines() if line]
    (folder / "expected.ndjson").write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--golden", action="store_true", help="also write expected.ndjson with the shipped mappings")
    args = parser.parse_args(argv)
    events = simulate()
    for tool, (_, write) in TOOLS.items():
        summary = write(events)
        (OUT / tool).mkdir(parents=True, exist_ok=True)
        (OUT / tool / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if args.golden:
            write_golden(tool, summary)
        print(f"{tool}: {summary['input_rows']} rows, {sum(summary['records_per_type'].values())} records",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
