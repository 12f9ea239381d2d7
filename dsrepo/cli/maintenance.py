"""Maintenance: ``gc`` (remove what nothing refers to, merge small packs) and ``reflog`` (show
what reflogs keep alive, expire old entries)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

import dsrepo
from dsrepo import Repository
from dsrepo.cli.app import checked_by, cli, is_quiet, open_repo
from dsrepo.cli.output import Progress, human, short

if TYPE_CHECKING:
    from dsrepo import GcReport


@cli.command("gc")
@click.option(
    "--prune",
    default="2.weeks",
    show_default=True,
    metavar="AGE",
    callback=checked_by("parse_age"),
    help="Remove unreachable objects in packs older than AGE (now, 1h, 14d, 2.weeks, never).",
)
@click.option("-n", "--dry-run", is_flag=True, help="Print what would be removed; change nothing.")
@click.option("--aggressive", is_flag=True, help="Rewrite every pack (not only small ones).")
@click.option(
    "--remote",
    "remote_name",
    metavar="NAME",
    help="Collect a shared remote (directory or S3) while others may push to it.",
)
@click.option(
    "--delete-delay",
    default="1h",
    show_default=True,
    metavar="AGE",
    callback=checked_by("parse_age"),
    help="With --remote: delete packs doomed at least AGE ago (by an earlier run).",
)
@click.option("--settle", type=click.FloatRange(0), default=None, hidden=True)
def gc_cmd(
    prune: str,
    dry_run: bool,
    aggressive: bool,
    remote_name: str | None,
    delete_delay: str,
    settle: float | None,
) -> None:
    """Remove unreachable objects and merge small packs."""
    repo = open_repo()
    if remote_name is not None:
        if aggressive:
            raise click.UsageError("--aggressive applies to a local gc, not to --remote")
        _gc_remote(repo, remote_name, prune, delete_delay, dry_run, settle)
        return
    with Progress("repacking", is_quiet()) as progress:
        report = repo.gc(prune=prune, dry_run=dry_run, aggressive=aggressive, progress=progress)
    if dry_run:
        for name in report.packs_removed:
            click.echo(f"would rewrite pack {name}")
        for name in report.orphans_removed:
            click.echo(f"would remove pack {name} (no index)")
    if not is_quiet() or dry_run:
        _summary(report)


def _gc_remote(
    repo: Repository, name: str, prune: str, delay: str, dry_run: bool, settle: float | None
) -> None:
    """One run of the shared-remote protocol (docs/gc.md): phase 2, then phase 1. (``--settle``,
    hidden: the collector's wait, for tests; pushers are told it through the record.)"""
    r = repo.gc_remote(
        name,
        prune=prune,
        delete_delay=dsrepo.parse_age(delay),
        dry_run=dry_run,
        settle_seconds=settle,
    )
    delete, doom = ("would delete", "would doom") if dry_run else ("deleted", "doomed")
    for pack in r.deleted:
        click.echo(f"{delete} pack {pack}")
    for pack in r.doomed:
        click.echo(f"{doom} pack {pack}")
    if is_quiet() and not dry_run:
        return
    click.echo(
        f"{delete} {len(r.deleted)} doomed pack(s) ({human(r.bytes_deleted)}); "
        f"{doom} {len(r.doomed)}, for a run at least {delay} later; "
        f"{len(r.waiting)} doomed earlier still waiting"
    )
    if not dry_run:
        click.echo(
            f"packs: {r.packs_before} -> {r.packs_after} ({r.packs_written} written, "
            f"{r.objects_copied} live object(s) copied); "
            f"{human(r.bytes_before)} -> {human(r.bytes_after)}"
        )


def _summary(r: GcReport) -> None:
    removed, reclaimed = (
        ("would remove", "would reclaim about") if r.dry_run else ("removed", "reclaimed")
    )
    click.echo(
        f"{removed} {r.objects_removed} unreachable object(s), kept {r.unreachable_kept} within "
        f"the grace period; {r.reachable} reachable"
    )
    click.echo(
        f"packs: {r.packs_before} -> {r.packs_after} ({r.packs_written} written, "
        f"{len(r.packs_removed)} replaced or removed, {len(r.orphans_removed)} without index "
        "removed)"
    )
    click.echo(
        f"{reclaimed} {human(max(r.bytes_reclaimed, 0))} "
        f"({human(r.bytes_before)} -> {human(r.bytes_after)})"
    )


@cli.command("reflog", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("args", nargs=-1, metavar="[show] [REF] | expire [REF...]")
@click.option(
    "--expire",
    "age",
    default=None,
    metavar="AGE",
    callback=checked_by("parse_age"),
    help="expire: drop entries older than AGE (default 90.days; now, 1h, 14d, never).",
)
@click.option("--all", "all_logs", is_flag=True, help="expire: every reflog.")
@click.option("-n", "--dry-run", is_flag=True, help="expire: count, change nothing.")
def reflog_cmd(args: tuple[str, ...], age: str | None, all_logs: bool, dry_run: bool) -> None:
    """Show a reflog (default HEAD), newest first: 'ID REF@{n}: MESSAGE'; or expire entries
    ('reflog expire [--expire=AGE] (--all | REF...)')."""
    if args[:1] == ("expire",):
        _expire(list(args[1:]), age, all_logs, dry_run)
        return
    if age is not None or all_logs or dry_run:
        raise click.UsageError("--expire, --all and --dry-run go with 'reflog expire'")
    names = list(args[1:] if args[:1] == ("show",) else args)
    if len(names) > 1:
        raise click.UsageError("reflog shows one ref's reflog at a time")
    ref = names[0] if names else "HEAD"
    for n, entry in enumerate(open_repo().reflog(ref)):
        click.echo(f"{short(entry.new) if entry.new else '0' * 12} {ref}@{{{n}}}: {entry.message}")


def _expire(refs: list[str], age: str | None, all_logs: bool, dry_run: bool) -> None:
    if all_logs == bool(refs):
        raise click.UsageError("name the refs whose reflogs to expire, or --all (not both)")
    result = open_repo().reflog_expire(
        None if all_logs else refs, expire=age or "90.days", dry_run=dry_run
    )
    if not is_quiet() or dry_run:
        entries = f"entr{'y' if result.removed == 1 else 'ies'}"
        click.echo(
            f"{'would expire' if dry_run else 'expired'} {result.removed} {entries} "
            f"from {result.logs} reflog(s), {result.kept} kept"
        )
