"""``cache ls`` and ``cache prune``: the user-level cache ``get`` fills."""

from __future__ import annotations

import time

import click

import dsrepo
from dsrepo import Repository
from dsrepo.cli.app import checked_by, cli, is_quiet
from dsrepo.cli.output import human, short


@cli.group()
def cache() -> None:
    """The user-level cache of `get` ($DSREPO_CACHE_DIR, default ~/.cache/dsrepo/cache)."""


@cache.command("ls")
def cache_ls() -> None:
    """Versions held, most recently used first: last use, commit, files, size, URL@REV."""
    for e in dsrepo.cache_entries():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        click.echo(
            f"{when}  {short(e.commit)}  {e.files:>6} file(s)  {human(e.bytes):>10}  {e.url}@{e.rev}"
        )


@cache.command("prune")
@click.option(
    "--max-size",
    metavar="SIZE",
    callback=checked_by("parse_size"),
    help="Keep the most recently used versions whose data fits SIZE (500M, 10G...).",
)
@click.option(
    "--older-than",
    metavar="AGE",
    callback=checked_by("parse_age"),
    help="Remove the versions not used for AGE (1h, 14d, 2.weeks...).",
)
@click.option("-n", "--dry-run", is_flag=True, help="Print what would be removed; change nothing.")
def cache_prune(max_size: str | None, older_than: str | None, dry_run: bool) -> None:
    """Remove the least recently used versions (their refs, files and then unreachable packs).
    Safe while other processes run get: it waits for them, and they for it."""
    if max_size is None and older_than is None:
        raise click.UsageError("say what to prune: --max-size SIZE and/or --older-than AGE")
    report = Repository.cache_prune(max_size=max_size, older_than=older_than, dry_run=dry_run)
    verb = "would be removed" if dry_run else "removed"
    for e in report.removed:
        click.echo(
            f"{'would remove' if dry_run else 'removed'}  {short(e.commit)}  {e.url}@{e.rev}"
        )
    if not is_quiet():
        click.echo(
            f"{len(report.removed)} version(s) {verb}, {len(report.kept)} kept; "
            f"cache {human(report.bytes_before)} -> {human(report.bytes_after)}",
            err=True,
        )
