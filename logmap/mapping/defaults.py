"""Defaults of the mapping language, in one place (documented in docs/mapping.md)."""

from __future__ import annotations

#: Successful responses and cache revalidations.
STATUS: list[tuple[int, int]] = [(200, 204), (206, 206), (304, 304)]

METHODS: list[str] = ["GET"]

STATIC_EXTENSIONS: list[str] = (
    "css js mjs map png jpg jpeg gif webp avif svg ico bmp tif tiff woff woff2 ttf otf eot mp4 webm mp3 ogg wav "
    "m4a pdf zip gz tgz bz2 xz 7z rar exe dmg iso apk txt xml json rss atom csv"
).split()

ANONYMOUS_HMAC: list[str] = ["{ip}", "{user_agent}"]
ANONYMOUS_KEY_ENV = "LOGMAP_KEY"

SESSION_TIMEOUT_S = 1800.0
MAX_DURATION_S = 1800.0

ACCESS_LOG_FORMATS = ("combined", "common", "vhost_combined", "regex")
