"""Defaults and fixed vocabularies of the mapping language, in one place (documented in docs/mapping.md).

The loader fills the model from these, the JSON Schema builder quotes them in descriptions, and tests compare
them with the reference, so a default changes in exactly one spot.
"""

from __future__ import annotations

LANGUAGE_VERSION = 1

# --- source ---------------------------------------------------------------------------------------------------

#: Formats this version reads, with a one-line description (shown by `logmap check` and in the JSON Schema).
FORMATS: dict[str, str] = {
    "combined": "Apache/nginx combined: %h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\"",
    "common": "Common Log Format: %h %l %u %t \"%r\" %>s %b",
    "vhost_combined": "%v:%p (or %v alone) followed by a combined line",
    "common_vhost": "%v[:%p] followed by a common line: %v %h %l %u %t \"%r\" %>s %b",
    "icecast2": "Icecast2 access log: combined + the session's duration in seconds",
    "s3": "Amazon S3 server access log",
    "combined_xff": "combined + a trailing \"X-Forwarded-For\" field: the client IP is its first address",
    "alb": "AWS Application Load Balancer access log",
    "elb": "AWS Classic Load Balancer access log",
    "haproxy": "HAProxy HTTP log (`option httplog`), with or without the syslog prefix",
    "cloudfront": "AWS CloudFront standard log (W3C headers, tab-separated, URL-encoded user agents)",
    "w3c": "W3C extended / IIS (also Advanced Logging, NetScaler): fields named by `#Fields:` headers, "
           "which may change mid-file; quoted values allowed",
    "shoutcast": "SHOUTcast W3C log (c-status, percent-encoded user agents)",
    "incapsula": "Imperva Incapsula W3C log (every value quoted; cs-uri is host + path)",
    "caddy": "Caddy v2 JSON access log",
    "nginx_json": "nginx `log_format … escape=json` with its variable names as keys",
    "traefik": "Traefik JSON access log",
    "cloudflare": "Cloudflare Logpush HTTP requests (JSON lines)",
    "nginx": "your nginx `log_format` string as `pattern`, compiled to a parser",
    "apache": "your Apache `LogFormat` string as `pattern`, compiled to a parser",
    "auto": "detect each file's format from its first lines (`logmap formats --detect FILE`)",
    "regex": "your own regular expression (`pattern`) with named groups",
}
ACCESS_LOG_FORMATS: tuple[str, ...] = tuple(FORMATS)
#: Access-log formats whose fields are named in the file (W3C `#Fields:`) or by JSON keys: `source.fields` applies.
W3C_FORMATS: tuple[str, ...] = ("w3c", "cloudfront", "shoutcast", "incapsula")
JSON_FORMATS: tuple[str, ...] = ("caddy", "nginx_json", "traefik", "cloudflare")
#: Analytics exports (read by `logmap.sources.exports`), whose rules match columns with `when:`.
EXPORT_FORMATS: dict[str, str] = {
    "parquet": "Parquet files (GA4 BigQuery export …); nested columns reachable as event_params.x, items[].y",
    "ndjson": "newline-delimited JSON, gzipped or not (Segment, Snowplow, Amplitude …)",
    "csv": "CSV or TSV, with a header row or the column names in `columns` / `header_file`",
}
FORMATS.update(EXPORT_FORMATS)
#: `format: auto` with `options` reads an export whose format (Parquet, NDJSON, CSV/TSV) is recognised in each
#: file by its content; without `options` it detects an access-log format.
AUTO_FORMAT = "auto"
#: Keys of `source.options`, which only export formats take (where time, page URL… are among the columns).
EXPORT_OPTION_KEYS: tuple[str, ...] = ("time", "page_url", "referrer", "user_agent", "ip", "required",
                                       "batch_rows", "separator", "header", "columns", "header_file", "quote",
                                       "escape")


def is_export_format(fmt: str, options: dict | None) -> bool:
    """Whether a source of this format (and options) reads an analytics export rather than an access log."""
    return fmt in EXPORT_FORMATS or (fmt == AUTO_FORMAT and bool(options))
TIME_UNITS: tuple[str, ...] = ("s", "ms", "us", "ns")
#: How a format name must look (so that formats added later are not flagged by editors).
FORMAT_NAME_PATTERN = r"^[a-z_0-9:]+$"

TIME_FORMAT = "%d/%b/%Y:%H:%M:%S %z"
TIMEZONE = "UTC"

#: What `source.fields` may rename a W3C or JSON field to (`date`: the date part of a split W3C time).
FIELD_TARGETS: tuple[str, ...] = ("ip", "user", "time", "date", "method", "target", "path", "query", "protocol",
                                  "status", "bytes", "referrer", "user_agent", "vhost", "time_taken")
#: What `source.captures` may name each HAProxy captured request header (`-`: a header logmap does not use).
CAPTURE_NAMES: tuple[str, ...] = ("host", "user_agent", "referrer", "-")

#: Fields an access-log source provides to templates and conditions (plus named groups of a `regex` pattern).
ACCESS_LOG_FIELDS: frozenset[str] = frozenset({
    "ip", "ident", "user", "time", "method", "target", "path", "query", "protocol", "status", "bytes",
    "referrer", "user_agent", "url", "vhost",
})
#: Extra fields per format.
FORMAT_FIELDS: dict[str, frozenset[str]] = {"vhost_combined": frozenset({"vhost", "port"}),
                                            "common_vhost": frozenset({"vhost", "port"})}

# --- filter ---------------------------------------------------------------------------------------------------

#: Successful responses and cache revalidations: 200, 201, 202, 203, 204, 206, 304 (inclusive ranges).
STATUS: list[tuple[int, int]] = [(200, 204), (206, 206), (304, 304)]

METHODS: list[str] = ["GET"]

STATIC_EXTENSIONS: list[str] = (
    "css js mjs map png jpg jpeg gif webp avif svg ico bmp tif tiff woff woff2 ttf otf eot mp4 webm mp3 ogg wav "
    "m4a pdf zip gz tgz bz2 xz 7z rar exe dmg iso apk txt xml json rss atom csv"
).split()

EXCLUDE_BOTS = True
#: With `exclude_bots`, an empty or `-` user agent is a bot too (in a log whose lines record user agents); access
#: logs only: an export's default is false (server-side events carry no user agent).
EXCLUDE_EMPTY_USER_AGENTS = True

# --- identity and context -------------------------------------------------------------------------------------

ANONYMOUS_HMAC: list[str] = ["{ip}", "{user_agent}"]
ANONYMOUS_KEY_ENV = "LOGMAP_KEY"

PAGE_URL = "{url}"
PAGE_REFERRER = "{referrer}"
USER_AGENT = "{user_agent}"
TRUNCATED_IP = "{ip}"
CAMPAIGN = "utm"
CAMPAIGN_KEYS: tuple[str, ...] = ("name", "source", "medium", "term", "content")

# --- durations ------------------------------------------------------------------------------------------------

DURATIONS_FROM = "next_event"
#: `durations.from` values that are methods, not a template of a column: the gap to the visitor's next record,
#: engaged time from the page's pings (else the next record), never.
DURATION_METHODS: tuple[str, ...] = ("next_event", "pings", "none")
DURATION_UNITS: tuple[str, ...] = ("s", "ms", "us")   # of the column `durations.from` names
DURATION_UNIT = "s"
SESSION_TIMEOUT = "30m"
MAX_DURATION = "30m"
SESSION_TIMEOUT_S = 1800.0
MAX_DURATION_S = 1800.0
#: `durations.pings` (`from: pings`): Snowplow's engaged-time model (dbt-snowplow-web's snowplow__heartbeat and
#: snowplow__min_visit_length, and the JavaScript tracker's activity tracking defaults).
PING_WHEN: dict[str, str] = {"event_name": "page_ping"}
HEARTBEAT = "10s"
HEARTBEAT_S = 10.0
MIN_VISIT = "5s"
MIN_VISIT_S = 5.0

# --- suggestions ----------------------------------------------------------------------------------------------

#: Names other analytics tools use for an interaction type, to suggest the right one when a rule has an unknown
#: `type` (string similarity alone would suggest `product_image_view` for `product_view`).
TYPE_ALIASES: dict[str, str] = {
    "product_view": "product_detail_page_view",
    "product_page_view": "product_detail_page_view",
    "product_viewed": "product_detail_page_view",
    "view_item": "product_detail_page_view",
    "pdp": "product_detail_page_view",
    "pdp_view": "product_detail_page_view",
    "detail_page_view": "product_detail_page_view",
    "category_view": "category_page_view",
    "view_item_list": "category_page_view",
    "product_list_viewed": "category_page_view",
    "plp": "category_page_view",
    "home": "home_page_view",
    "homepage_view": "home_page_view",
    "home_view": "home_page_view",
    "promo_view": "promo_page_view",
    "view_promotion": "promo_page_view",
    "select_promotion": "click",
    "select_item": "click",
    "search_performed": "search",
    "products_searched": "search",
    "view_search_results": "search",
    "product_added": "add_to_cart",
    "cart_add": "add_to_cart",
    "product_removed": "remove_from_cart",
    "cart_remove": "remove_from_cart",
    "purchase": "checkout",
    "order_completed": "checkout",
    "begin_checkout": "checkout",
    "order_refunded": "refund",
    "add_to_wishlist": "add_to_collection",
    "product_added_to_wishlist": "add_to_collection",
    "wishlist_add": "add_to_collection",
    "rating": "rate",
    "review": "rate",
    "view_item_image": "product_image_view",
    "image_view": "product_image_view",
}
