"""Generate a realistic storefront access log in `combined` format, deterministically.

Used for the shipped sample (`fixtures/storefront/access.log`) and by the benchmarks at millions of lines:

    python bench/storefront_log.py --lines 300 --seed 7 > fixtures/storefront/access.log
    python bench/storefront_log.py --lines 2000000 --visitors 60000 > bench/data/storefront-2m.log

Visitors browse in sessions (home → categories → products → search → cart → checkout), with static assets,
bots, 404s, redirects, POSTs to pages no rule maps, campaign (utm_*) landings, a few logged-in users and a
sprinkling of malformed lines, as a real shop's log has.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

CATEGORIES = ["shoes/running", "shoes/trail", "shoes/casual", "apparel/jackets", "apparel/shirts", "bags",
              "accessories/socks", "accessories/hats", "sale", "new-arrivals"]
WORDS = ["red", "blue", "trail", "runner", "classic", "light", "merino", "rain", "city", "pro", "zip", "wool"]
BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
]
STATIC = ["/static/app.js", "/static/app.css", "/img/logo.svg", "/favicon.ico", "/fonts/inter.woff2"]
CAMPAIGNS = [("newsletter", "email", "spring_sale"), ("google", "cpc", "brand"), ("instagram", "social", "drop_42")]
SITE = "https://shop.example.com"


def _product(rng: random.Random) -> tuple[int, str]:
    pid = rng.randint(1000, 1999)
    return pid, f"/product/{pid}-{rng.choice(WORDS)}-{rng.choice(WORDS)}"


class Visitor:
    def __init__(self, rng: random.Random, index: int) -> None:
        self.ip = f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        if rng.random() < 0.05:
            self.ip = f"2001:db8:{index % 65536:x}::{rng.randint(1, 65535):x}"
        self.ua = rng.choice(BROWSERS)
        self.user = f"user{index}" if rng.random() < 0.1 else "-"


def _session(rng: random.Random) -> Iterator[tuple[str, str, int, str]]:
    """(method, target, status, referrer-path) steps of one browsing session."""
    referrer = "-"
    if rng.random() < 0.25:
        source, medium, campaign = rng.choice(CAMPAIGNS)
        yield "GET", f"/?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}", 200, "-"
    else:
        yield "GET", "/", 200, "-"
    referrer = SITE + "/"
    cart: list[int] = []
    for _ in range(rng.randint(1, 8)):
        roll = rng.random()
        if roll < 0.25:
            target = f"/category/{rng.choice(CATEGORIES)}"
        elif roll < 0.6:
            pid, target = _product(rng)
            if rng.random() < 0.35:
                yield "GET", target, 200, referrer
                referrer = SITE + target
                target = f"/cart/add?sku={pid}&qty={rng.choice([1, 1, 1, 2, 3])}"
                cart.append(pid)
                yield "POST", target, 200, referrer
                continue
        elif roll < 0.75:
            words = "+".join(rng.sample(WORDS, rng.randint(1, 2)))
            target = f"/search?q={words}" + (f"&color={rng.choice(['red', 'blue'])}" if rng.random() < 0.3 else "")
        elif roll < 0.8:
            target = f"/wishlist/add?sku={rng.randint(1000, 1999)}"
            yield "POST", target, 200, referrer
            continue
        elif roll < 0.85:
            target = "/account/login"
            yield "POST", target, 302, referrer
            continue
        elif roll < 0.9:
            target = f"/product/{rng.randint(5000, 5999)}-gone"
            yield "GET", target, 404, referrer
            continue
        else:
            target = f"/category/{rng.choice(CATEGORIES)}?page={rng.randint(2, 5)}"
        yield "GET", target, 200, referrer
        referrer = SITE + target.split("?")[0]
    if cart and rng.random() < 0.5:
        if rng.random() < 0.3:
            yield "POST", f"/cart/remove?sku={cart.pop()}", 200, SITE + "/cart"
        if cart:
            total = sum(rng.choice([19.9, 49.0, 89.5, 120.0]) for _ in cart)
            yield "GET", f"/checkout/confirmation?order={rng.randint(10000, 99999)}&total={total:.2f}", 200, SITE + "/checkout"


def _clf_time(moment: datetime) -> str:
    return moment.strftime("%d/%b/%Y:%H:%M:%S +0000")


def generate(lines: int, *, seed: int = 7, visitors: int = 200, start: str = "2024-03-01T08:00:00") -> Iterator[str]:
    """Yield ``lines`` log lines (without newlines), sorted by time, reproducibly for a given seed."""
    rng = random.Random(seed)
    people = [Visitor(rng, i) for i in range(visitors)]
    clock = datetime.fromisoformat(start).replace(tzinfo=UTC)
    emitted = 0
    while emitted < lines:
        visitor = rng.choice(people)
        clock += timedelta(seconds=rng.randint(0, 20))
        moment = clock
        for method, target, status, referrer in _session(rng):
            if emitted >= lines:
                return
            moment += timedelta(seconds=rng.randint(3, 240) if rng.random() > 0.02 else rng.randint(2000, 4000))
            size = rng.randint(2000, 90000)
            yield (f'{visitor.ip} - {visitor.user} [{_clf_time(moment)}] "{method} {target} HTTP/1.1" {status} {size} '
                   f'"{referrer}" "{visitor.ua}"')
            emitted += 1
            if rng.random() < 0.5 and emitted < lines:
                asset = rng.choice(STATIC)
                yield (f'{visitor.ip} - - [{_clf_time(moment)}] "GET {asset} HTTP/1.1" 200 1234 '
                       f'"{SITE}{target}" "{visitor.ua}"')
                emitted += 1
            if rng.random() < 0.04 and emitted < lines:
                bot = rng.choice(BOTS)
                _, path = _product(rng)
                yield f'66.249.66.{rng.randint(1, 254)} - - [{_clf_time(moment)}] "GET {path} HTTP/1.1" 200 5120 "-" "{bot}"'
                emitted += 1
            if rng.random() < 0.005 and emitted < lines:
                yield rng.choice(['\\x16\\x03\\x01 garbage from a TLS probe',
                                  f'{visitor.ip} - - [{_clf_time(moment)}] "GET /truncated'])
                emitted += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--visitors", type=int, default=200)
    args = parser.parse_args()
    out = sys.stdout
    for line in generate(args.lines, seed=args.seed, visitors=args.visitors):
        out.write(line + "\n")


if __name__ == "__main__":
    main()
