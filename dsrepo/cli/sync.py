"""Remotes: remote, push, fetch, pull, clone, get."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from dsrepo import Repository, shorten
from dsrepo.cli.app import UTF8, cli, is_quiet, open_repo
from dsrepo.cli.heap import fix_mmap_threshold
from dsrepo.cli.output import Progress, human, short

F = TypeVar("F", bound=Callable[..., Any])


def jobs_option(text: str) -> Callable[[F], F]:
    """``-j N``: requests in flight (1 to 64, default 8)."""
    return click.option(
        "-j", "--jobs", type=click.IntRange(1, 64), default=8, show_default=True, help=text
    )


@cli.group(invoke_without_command=True)
@click.option("-v", "--verbose", is_flag=True, help="Show URLs.")
@click.pass_context
def remote(ctx: click.Context, verbose: bool) -> None:
    """Manage remotes (a directory path, file:// URL or s3://BUCKET/PREFIX)."""
    if ctx.invoked_subcommand is not None:
        return
    for spec in open_repo().remotes():
        click.echo(f"{spec.name}\t{spec.url}" if verbose else spec.name)


@remote.command("add")
@click.option("--endpoint-url", help="S3-compatible endpoint (MinIO, Ceph, ...).")
@click.option("--region", help="S3 region.")
@click.option("--profile", help="AWS profile to use (credentials stay in ~/.aws).")
@click.argument("name")
@click.argument("url", type=UTF8)
def remote_add(
    endpoint_url: str | None, region: str | None, profile: str | None, name: str, url: str
) -> None:
    """Add a remote."""
    open_repo().remote_add(name, url, endpoint_url=endpoint_url, region=region, profile=profile)


@remote.command("remove")
@click.argument("name")
def remote_remove(name: str) -> None:
    """Remove a remote and its remote-tracking refs."""
    open_repo().remote_remove(name)


@remote.command("rename")
@click.argument("old")
@click.argument("new")
def remote_rename(old: str, new: str) -> None:
    """Rename a remote (and its remote-tracking refs)."""
    open_repo().remote_rename(old, new)


@remote.command("set-url")
@click.argument("name")
@click.argument("url", type=UTF8)
def remote_set_url(name: str, url: str) -> None:
    """Change a remote's URL."""
    open_repo().remote_set_url(name, url)


@cli.command()
@click.option("--tags", is_flag=True, help="Push every tag too.")
@click.option("-f", "--force", is_flag=True, help="Allow non-fast-forward updates.")
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be updated; send nothing.")
@click.option(
    "-d", "--delete", is_flag=True, help="Delete the named branches or tags on the remote."
)
@jobs_option("Parallel uploads.")
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@click.argument("refs", metavar="[REF]...", nargs=-1)
def push(
    tags: bool,
    force: bool,
    dry_run: bool,
    delete: bool,
    jobs: int,
    remote_name: str | None,
    refs: tuple[str, ...],
) -> None:
    """Send refs and the objects the remote lacks; refs move last, by compare-and-swap.
    REF may be SRC:DST; :DST (or --delete DST) deletes DST on the remote."""
    fix_mmap_threshold()
    if delete and (remote_name is None or not refs):
        raise click.UsageError("--delete needs a remote and the branches or tags to delete")
    repo = open_repo()
    with Progress(f"push {remote_name or ''}".rstrip(), is_quiet()) as progress:
        result = repo.push(
            remote_name,
            () if delete else refs,
            tags=tags,
            force=force,
            dry_run=dry_run,
            jobs=jobs,
            progress=progress,
            delete=refs if delete else (),
        )
    for u in result.updates:
        old = short(u.old) if u.old else "(new)"
        new = short(u.new) if u.new else "(deleted)"
        click.echo(
            f"{u.status:>12}  {shorten(u.ref)}  {old} -> {new}"
            + (f"  ({u.reason})" if u.reason else "")
        )
    s = result.stats
    if not is_quiet() and s.objects:
        click.echo(
            f"sent {s.objects} objects in {s.packs} packs ({human(s.bytes)}), {s.requests} requests",
            err=True,
        )
    error = result.error()
    if error is not None:
        raise error


@cli.command()
@click.option("--prune", is_flag=True, help="Delete remote-tracking refs the remote no longer has.")
@jobs_option("Parallel downloads.")
@click.argument("remote_name", metavar="[REMOTE]", required=False)
def fetch(prune: bool, jobs: int, remote_name: str | None) -> None:
    """Download the objects and refs the remote has and this repository lacks."""
    fix_mmap_threshold()
    repo = open_repo()
    with Progress(f"fetch {remote_name or ''}".rstrip(), is_quiet()) as progress:
        result = repo.fetch(remote_name, prune=prune, jobs=jobs, progress=progress)
    for u in result.updated:
        old = short(u.old) if u.old else "(new)"
        click.echo(
            f"{u.status:>10}  {shorten(u.ref)}  {old} -> {short(u.new)}"
            + (f"  ({u.reason})" if u.reason else "")
        )
    for ref in result.pruned:
        click.echo(f"{'pruned':>10}  {shorten(ref)}")
    s = result.stats
    if not is_quiet() and s.objects:
        click.echo(
            f"received {s.objects} objects ({human(s.bytes)}), {s.requests} requests", err=True
        )


@cli.command()
@click.option(
    "--strategy",
    type=click.Choice(["ours", "theirs", "first", "last"]),
    help="Decide conflicting paths (as merge --strategy); without it, conflicts stop the merge.",
)
@click.argument("remote_name", metavar="[REMOTE]", required=False)
@click.argument("branch_name", metavar="[BRANCH]", required=False)
def pull(strategy: str | None, remote_name: str | None, branch_name: str | None) -> None:
    """Fetch, then fast-forward or merge (with merge's rules: conflicts stop, nothing is lost)."""
    fix_mmap_threshold()
    with Progress("pull", is_quiet()) as progress:
        out = open_repo().pull(remote_name, branch_name, strategy=strategy, progress=progress)
    click.echo(
        {
            "up-to-date": "Already up to date.",
            "fast-forward": f"Fast-forward to {short(out.commit)}",
            "merged": f"Merged: {short(out.commit)}",
        }.get(out.kind, out.kind)
    )


@cli.command()
@click.option("-b", "--branch", "branch_name", help="Check out this branch (default: main).")
@click.option(
    "--only",
    multiple=True,
    metavar="GLOB",
    help="Partial clone: only these files' data (more on demand).",
)
@click.option("--endpoint-url", help="S3-compatible endpoint (MinIO, Ceph, ...).")
@click.option("--region", help="S3 region.")
@click.option("--profile", help="AWS profile to use (credentials stay in ~/.aws).")
@jobs_option("Parallel downloads.")
@click.argument("url")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
def clone(
    branch_name: str | None,
    only: tuple[str, ...],
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    jobs: int,
    url: str,
    directory: str | None,
) -> None:
    """Copy a remote dataset repository into a new directory."""
    fix_mmap_threshold()
    from dsrepo import S3Options

    phases = ("receiving objects", "checking out files")
    with Progress("clone", is_quiet(), phases=phases) as progress:
        repo = Repository.clone(
            url,
            directory,
            branch=branch_name,
            only=list(only) or None,
            jobs=jobs,
            s3=S3Options(endpoint_url, region, profile),
            progress=progress,
        )
    if not is_quiet():
        click.echo(f"Cloned {url} into {repo.root}", err=True)


@cli.command()
@click.option("--only", multiple=True, metavar="GLOB", help="Only files matching GLOB.")
@click.option(
    "-f", "--force", is_flag=True, help="Replace or remove files of DIR that get did not write."
)
@click.option(
    "--link",
    type=click.Choice(["auto", "reflink", "hardlink", "copy"]),
    default="auto",
    show_default=True,
    help="How files come from the cache (auto: reflink, else hard link, else copy).",
)
@click.option(
    "--copy", "mutable", is_flag=True, help="Writable files of their own (no hard links)."
)
@click.option("--endpoint-url", help="S3-compatible endpoint (MinIO, Ceph, ...).")
@click.option("--region", help="S3 region.")
@click.option("--profile", help="AWS profile to use (credentials stay in ~/.aws).")
@click.argument("url")
@click.argument("directory", type=click.Path(file_okay=False))
def get(
    only: tuple[str, ...],
    force: bool,
    link: str,
    mutable: bool,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    url: str,
    directory: str,
) -> None:
    """Make DIRECTORY exactly version URL[@REV] (any revision form; default latest, the remote's
    default branch): read-only files linked from a user-level cache ($DSREPO_CACHE_DIR,
    default ~/.cache/dsrepo/cache), so nothing is downloaded or stored twice."""
    fix_mmap_threshold()
    from dsrepo import S3Options, split_revision

    url, rev = split_revision(url)
    with Progress("get", is_quiet()) as progress:
        result = Repository.get(
            url,
            directory,
            rev=rev,
            only=list(only) or None,
            force=force,
            link=link,
            copy=mutable,
            s3=S3Options(endpoint_url, region, profile),
            progress=progress,
        )
    if result.warning:
        click.echo(f"warning: {result.warning}", err=True)
    if not is_quiet():
        for p in result.removed[:20]:
            click.echo(f"removed stale {p}", err=True)
        if len(result.removed) > 20:
            click.echo(f"removed {len(result.removed) - 20} more stale file(s)", err=True)
        how = ", ".join(f"{n} by {m}" for m, n in sorted(result.methods.items()))
        click.echo(
            f"{len(result.written)} file(s) written ({human(result.bytes_written)}"
            + (f"; {how}" if how else "")
            + f"), {result.kept} unchanged, {len(result.removed)} removed; "
            f"downloaded {human(result.downloaded)}",
            err=True,
        )
