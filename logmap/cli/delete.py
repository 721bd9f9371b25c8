"""`logmap delete-interactions` and `logmap delete-products`: deletions by id, retried like uploads."""

from __future__ import annotations

import click

from logmap.cli import main
from logmap.cli.upload import api_options, make_client, make_retry
from logmap.errors import LogmapError


def _ids(inline: str | None, path: str | None, what: str) -> list[str]:
    from logmap.api.delete import read_ids, split_ids

    if bool(inline) == bool(path):
        raise LogmapError(f"give either --{what}-ids a,b,… or --from FILE (one id per line)")
    ids = split_ids(inline) if inline else read_ids(path)  # type: ignore[arg-type]
    if not ids:
        raise LogmapError(f"no {what} ids given")
    return ids


@main.command("delete-interactions")
@click.option("--user-ids", metavar="ID,ID,…", help="Comma-separated user ids.")
@click.option("--from", "from_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="A file of user ids, one per line (# comments allowed).")
@click.option("--chunk-size", type=click.IntRange(1), default=1_000, show_default=True, help="Ids per request.")
@api_options
def delete_interactions(user_ids: str | None, from_file: str | None, chunk_size: int, api_key: str | None,
                        base_url: str, key_in: str, timeout_s: float, attempts: int, backoff_s: float,
                        max_backoff_s: float) -> None:
    """Delete every interaction of the given users (right to be forgotten): DELETE /v1/interactions.

    \b
    Examples:
      logmap delete-interactions --user-ids 5b09700,f5df9ef
      logmap delete-interactions --from forget-these.txt
    """
    from logmap.api.delete import delete_interactions as run

    ids = _ids(user_ids, from_file, "user")
    with make_client(api_key, base_url, key_in, timeout_s) as client:
        result = run(client, ids, chunk_size=chunk_size, retry=make_retry(attempts, backoff_s, max_backoff_s))
    click.echo(f"deleted the interactions of {result.ids:,} user(s) in {result.requests:,} request(s)"
               + (f" ({result.retried} retried)" if result.retried else ""))


@main.command("delete-products")
@click.option("--product-ids", metavar="ID,ID,…", help="Comma-separated product ids.")
@click.option("--from", "from_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="A file of product ids, one per line (# comments allowed).")
@click.option("--wait", is_flag=True, help="Poll each delete task until it is done (or --wait-timeout passes).")
@click.option("--wait-timeout", type=click.FloatRange(0), default=600.0, show_default=True,
              help="Seconds to wait for the tasks with --wait.")
@click.option("--poll-interval", type=click.FloatRange(0.01), default=2.0, show_default=True,
              help="Seconds between status polls with --wait.")
@click.option("--chunk-size", type=click.IntRange(1), default=1_000, show_default=True, help="Ids per request.")
@api_options
def delete_products(product_ids: str | None, from_file: str | None, wait: bool, wait_timeout: float,
                    poll_interval: float, chunk_size: int, api_key: str | None, base_url: str, key_in: str,
                    timeout_s: float, attempts: int, backoff_s: float, max_backoff_s: float) -> None:
    """Delete products by id: POST /v1/products/_delete, which starts a task per request; --wait polls
    GET /v1/products/_status/{task_id} until each is done.

    \b
    Examples:
      logmap delete-products --product-ids 123ABC-BLACK,123ABC-WHITE --wait
      logmap delete-products --from discontinued.txt
    """
    from logmap.api.delete import delete_products as run
    from logmap.api.delete import wait_for_tasks

    ids = _ids(product_ids, from_file, "product")
    retry = make_retry(attempts, backoff_s, max_backoff_s)
    with make_client(api_key, base_url, key_in, timeout_s) as client:
        result = run(client, ids, chunk_size=chunk_size, retry=retry)
        click.echo(f"asked to delete {result.ids:,} product(s): {len(result.task_ids)} task(s)")
        for task_id in result.task_ids:
            click.echo(f"  task {task_id}")
        if wait:
            wait_for_tasks(client, result.task_ids, timeout_s=wait_timeout, interval_s=poll_interval, retry=retry)
            click.echo(f"all {len(result.task_ids)} task(s) done")
