"""Load-balancer and proxy access logs as one-regex presets: AWS ALB, AWS classic ELB, HAProxy HTTP logs.

Why a module of its own: these formats are plain data (a pattern, a time format, a documented example) that
``logmap.sources.accesslog`` turns into ``LogFormat`` presets, so they get the same columnar matching,
normalisation and malformed accounting as the NCSA presets without touching that code. Each example is the
vendor's documented example line (AWS Elastic Load Balancing user guides; HAProxy configuration manual 8.2.3).

Notes per format:

* **ALB / ELB** log the client as ``ip:port`` (IPv6 in brackets is not bracketed by AWS: the port is the part
  after the last ``:``); the request target is absolute (``http://host:80/p``) so ``path`` is ``/p`` and
  ``url`` is the target itself; the time is ISO 8601 UTC with a ``Z``. The status is the load balancer's
  (``elb_status_code``), the bytes are ``sent_bytes``; ``-`` (no response) is absent.
* **HAProxy** ``option httplog`` lines, with or without the syslog prefix (``Feb  6 12:14:14 host
  haproxy[pid]: ``); the accept date has milliseconds and no offset, so it is read in ``source.timezone``.
  The first ``{…}`` block holds the captured request headers (``capture request header …``), read for the user
  agent, referrer and host (``accesslog.captured_headers``); a second one (response headers) is skipped. A
  ``+`` before the byte count (a truncated transfer) is dropped.
"""

from __future__ import annotations

_QUOTED_UA = r'"(?P<user_agent>[^"\\]*(?:\\.[^"\\]*)*)"'
_CLIENT = r"(?P<ip>\S+?):(?P<client_port>\d+)"
_AWS_TIMES = r" \S+ (?:\S+ ){3}(?P<status>\d{3}|-) \S+ \S+ (?P<bytes>\d+|-) "
_AWS_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"

#: name → (description, example, pattern, time format)
CLOUD_FORMATS: dict[str, tuple[str, str, str, str]] = {
    "alb": (
        "AWS Application Load Balancer access log (type time elb client:port target:port … \"request\" \"ua\" …)",
        'http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 '
        '0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - '
        'arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 '
        '"Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" '
        '"10.0.0.1:80" "200" "-" "-"',
        r"^(?P<type>h2|https?|wss?|grpcs?) (?P<time>\d{4}-\d\d-\d\dT\S+Z) (?P<elb>\S+) " + _CLIENT + _AWS_TIMES
        + r'"(?P<request>[^"]*)" ' + _QUOTED_UA + r"(?: .*)?$",
        _AWS_TIME_FORMAT,
    ),
    "elb": (
        "AWS Classic Load Balancer access log (time elb client:port backend:port … \"request\" \"ua\" …)",
        '2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000073 0.001048 0.000057 '
        '200 200 0 29 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.38.0" - -',
        r"^(?P<time>\d{4}-\d\d-\d\dT\S+Z) (?P<elb>\S+) " + _CLIENT + _AWS_TIMES
        + r'"(?P<request>[^"]*)"(?: ' + _QUOTED_UA + r")?(?: .*)?$",
        _AWS_TIME_FORMAT,
    ),
    "haproxy": (
        "HAProxy HTTP log (option httplog), with or without the syslog prefix",
        "Feb  6 12:14:14 localhost haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in "
        'static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 {1wt.eu} {} "GET /index.html HTTP/1.1"',
        r"^(?:(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ )?[^:\[ ]+(?:\[\d+\])?: )?" + _CLIENT
        + r" \[(?P<time>[^\]]+)\] (?P<frontend>\S+) (?P<backend>\S+) (?P<timers>\S+) (?P<status>-?\d+) "
        r"\+?(?P<bytes>\d+) \S+ \S+ \S+ \S+ \S+(?: \{(?P<captured_request>[^}]*)\})?(?: \{[^}]*\})?"
        r"(?: \"(?P<request>[^\"]*)\")?(?: .*)?$",
        "%d/%b/%Y:%H:%M:%S%.f",
    ),
}
