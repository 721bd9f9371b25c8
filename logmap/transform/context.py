"""The `context` section: page, user agent, truncated IP, campaign, locale, region, custom context."""

from __future__ import annotations

import polars as pl

from logmap.mapping.model import Context
from logmap.records.validate import IPV4  # the API's ipv4 format: no leading zeros, octets 0-255
from logmap.transform.expressions import Scope, as_string, compile_template, query_of_url, query_param

UTM = {"name": "utm_campaign", "source": "utm_source", "medium": "utm_medium", "term": "utm_term",
       "content": "utm_content"}


def truncate_ipv4(ip: pl.Expr) -> pl.Expr:
    """``1.2.3.4`` → ``1.2.3.0``; anything that is not an IPv4 address (IPv6, host names) → null."""
    return pl.when(ip.str.contains(IPV4)).then(ip.str.replace(r"\.[0-9]+$", ".0"))


def context_columns(context: Context, scope: Scope) -> dict[str, pl.Expr]:
    """``r:context.*`` expressions for every context entry the mapping keeps."""
    out: dict[str, pl.Expr] = {}

    def text(name: str, template: str | None) -> pl.Expr | None:
        return None if not template else as_string(compile_template(template, scope, context.where_of(name)))

    page_url = text("page.url", context.page_url)
    for name, template in (("page.url", context.page_url), ("page.referrer", context.page_referrer),
                           ("page.title", context.page_title), ("user_agent", context.user_agent),
                           ("locale", context.locale), ("region", context.region)):
        expr = text(name, template)
        if expr is not None:
            out[f"r:context.{name}"] = expr
    truncated_ip = text("truncated_ip", context.truncated_ip)
    if truncated_ip is not None:
        out["r:context.truncated_ip"] = truncate_ipv4(truncated_ip)
    if context.campaign == "utm" and page_url is not None:
        # Most pages carry no campaign: the query is only cut out of URLs that mention one.
        tagged = pl.when(page_url.str.contains("utm_", literal=True)).then(page_url)
        query = scope.stage("__campaign_query", query_of_url(tagged))
        for field, parameter in UTM.items():
            out[f"r:context.campaign.{field}"] = query_param(query, parameter)
    elif isinstance(context.campaign, dict):
        for field, template in context.campaign.items():
            campaign = text(f"campaign.{field}", template)
            if campaign is not None:
                out[f"r:context.campaign.{field}"] = campaign
    for key, custom in context.custom_context.items():
        compiled = compile_template(custom, scope, context.where_of(f"custom_context.{key}"))
        out[f"r:context.custom_context.{key}"] = compiled.expr
    return out
