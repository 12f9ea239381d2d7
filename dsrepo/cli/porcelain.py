"""Everyday commands: init, add, rm, mv, status, commit, tag, branch, switch, checkout, restore,
merge, config. Reading history is in ``history``, remotes in ``sync``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dsrepo import ConfigError, Repository, shorten
from dsrepo.cli.app import UTF8, cli, is_quiet, open_repo
from dsrepo.cli.output import Progress, human, short

if TYPE_CHECKING:
    from dsrepo import CheckoutResult


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option(
    "-b", "--initial-branch", default="main", show_default=True, help="The first branch's name."
)
def init(directory: str, initial_branch: str) -> None:
    """Create an empty repository in DIRECTORY."""
    repo = Repository.init(directory, branch=initial_branch)
    if not is_quiet():
        # bytes: the path as the file system has it, even when not valid UTF-8
        click.echo(b"Initialized empty dsrepo repository in " + os.fsencode(repo.dsdir))


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Add ignored files too.")
@click.argument("paths", nargs=-1, required=True)
def add(force: bool, paths: tuple[str, ...]) -> None:
    """Stage files (directories recursively; '.' for all; quoted globs such as '*.csv' match
    like git's pathspecs). Removed files are staged as removed."""
    repo = open_repo()
    with Progress("hashing", is_quiet()) as progress:
        result = repo.add(*paths, cwd=Path.cwd(), force=force, progress=progress)
    if not is_quiet() and sys.stderr.isatty():
        click.echo(
            f"staged {len(result.added)} new, {len(result.updated)} changed, "
            f"{len(result.removed)} removed ({human(result.bytes_hashed)} read)",
            err=True,
        )


@cli.command()
@click.option("--cached", is_flag=True, help="Unstage only; keep the files on disk.")
@click.option("-f", "--force", is_flag=True, help="Delete files even with unstaged changes.")
@click.option(
    "-r", "recursive", is_flag=True, help="Accepted for git compatibility (always recursive)."
)
@click.argument("paths", nargs=-1, required=True)
def rm(cached: bool, force: bool, recursive: bool, paths: tuple[str, ...]) -> None:
    """Remove files from the staging area (and from disk unless --cached)."""
    repo = open_repo()
    for p in repo.rm(*paths, cached=cached, force=force, cwd=Path.cwd()):
        if not is_quiet():
            click.echo(f"rm '{p}'")


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing destination.")
@click.argument("source")
@click.argument("destination")
def mv(force: bool, source: str, destination: str) -> None:
    """Move or rename a tracked file or directory."""
    open_repo().mv(source, destination, force=force, cwd=Path.cwd())


@cli.command()
@click.option("-s", "--short", "short_format", is_flag=True, help="One line per path.")
@click.option(
    "-u",
    "--untracked-files",
    "untracked",
    type=click.Choice(["no", "normal", "all"]),
    default="normal",
    show_default=True,
    help="normal: an untracked folder as one 'dir/' line; all: every untracked file; no: none.",
)
def status(short_format: bool, untracked: str) -> None:
    """Show staged, unstaged and untracked changes."""
    repo = open_repo()
    st = repo.status(untracked=untracked)
    if short_format:
        rows: dict[str, list[str]] = {}
        for codes, paths in (
            ("A ", st.staged_added),
            ("M ", st.staged_modified),
            ("D ", st.staged_deleted),
        ):
            for p in paths:
                rows[p] = list(codes)
        for code, paths in (("M", st.modified), ("D", st.deleted)):
            for p in paths:
                rows.setdefault(p, [" ", " "])[1] = code
        lines = [(p, "".join(codes)) for p, codes in rows.items()]
        lines += [(p, "??") for p in st.untracked]  # may repeat a staged deletion, as git does
        for p, codes in sorted(lines, key=lambda x: (x[0], x[1] == "??")):
            click.echo(f"{codes} {p}")
        return
    where = f"On branch {shorten(st.branch)}" if st.branch else f"HEAD detached at {short(st.head)}"
    click.echo(where)
    if st.upstream:
        if st.upstream_gone:
            click.echo(f"Your branch is based on '{st.upstream}', but the upstream is gone.")
        elif st.ahead or st.behind:
            click.echo(
                f"Your branch and '{st.upstream}' differ: {st.ahead} ahead, {st.behind} behind."
            )
        else:
            click.echo(f"Your branch is up to date with '{st.upstream}'.")
    if st.interrupted:
        click.echo(f"'{st.interrupted}' was interrupted; run it again to complete it")
    if st.merging:
        click.echo(
            f"Merging {', '.join(short(m) for m in st.merging)} (commit to conclude, or merge --abort)"
        )
    if st.head is None:
        click.echo("\nNo commits yet")
    sections = [
        (
            "Changes to be committed:",
            [
                ("new file", st.staged_added),
                ("modified", st.staged_modified),
                ("deleted", st.staged_deleted),
            ],
        ),
        ("Changes not staged for commit:", [("modified", st.modified), ("deleted", st.deleted)]),
        ("Untracked files:", [("", st.untracked)]),
    ]
    for title, groups in sections:
        items = [(label, p) for label, paths in groups for p in paths]
        if not items:
            continue
        click.echo(f"\n{title}")
        for label, p in sorted(items, key=lambda x: x[1]):
            click.echo(f"\t{label + ':':<12}{p}" if label else f"\t{p}")
    if st.clean and not st.untracked:
        click.echo("nothing to commit, working tree clean")


@cli.command()
@click.option("-m", "--message", required=True, type=UTF8, help="The commit message.")
@click.option("-a", "--all", "all_", is_flag=True, help="Stage changes to tracked files first.")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata (VALUE may be JSON).")
@click.option(
    "--meta-file", type=click.Path(dir_okay=False), help="Metadata from a JSON object file."
)
@click.option("--allow-empty", is_flag=True, help="Record a commit even if nothing changed.")
def commit(
    message: str, all_: bool, meta: tuple[str, ...], meta_file: str | None, allow_empty: bool
) -> None:
    """Record the staged snapshot as a new version."""
    from dsrepo import parse_meta

    repo = open_repo()
    metadata = parse_meta(list(meta), meta_file)
    info = repo.commit(message, metadata, allow_empty=allow_empty, all=all_)
    branch = repo.head_branch()
    if not is_quiet():
        click.echo(
            f"[{shorten(branch) if branch else 'detached HEAD'} {short(info.id)}] {message.splitlines()[0]}"
        )


@cli.command()
@click.option("-a", "--annotate", is_flag=True, help="Make an annotated tag (needs -m).")
@click.option("-m", "--message", type=UTF8, help="Tag message (implies -a).")
@click.option(
    "-l", "--list", "list_", is_flag=True, help="List tags (optionally matching PATTERN)."
)
@click.option("-d", "--delete", is_flag=True, help="Delete the tag.")
@click.option("-f", "--force", is_flag=True, help="Replace a tag; delete a published one.")
@click.argument("name", required=False)
@click.argument("rev", required=False, default="HEAD")
def tag(
    annotate: bool,
    message: str | None,
    list_: bool,
    delete: bool,
    force: bool,
    name: str | None,
    rev: str,
) -> None:
    """Create, list or delete tags."""
    repo = open_repo()
    if list_ or name is None:
        for t in repo.tags(name):
            if t.annotated and t.tag is not None:
                click.echo(f"{t.name:<20} {t.tag.message.splitlines()[0] if t.tag.message else ''}")
            else:
                click.echo(t.name)
        return
    if delete:
        old = repo.delete_tag(name, force=force)
        click.echo(f"Deleted tag '{name}' (was {short(old)})")
        return
    if annotate and message is None:
        raise click.UsageError("an annotated tag needs a message (-m)")
    repo.tag(name, rev, message=message, force=force)


@cli.command()
@click.option("-d", "delete", is_flag=True, help="Delete a merged branch.")
@click.option("-D", "force_delete", is_flag=True, help="Delete a branch even if not merged.")
@click.option("-f", "--force", is_flag=True, help="Move an existing branch.")
@click.option("-r", "--remotes", is_flag=True, help="List remote-tracking branches.")
@click.argument("name", required=False)
@click.argument("rev", required=False, default="HEAD")
def branch(
    delete: bool, force_delete: bool, force: bool, remotes: bool, name: str | None, rev: str
) -> None:
    """List, create or delete branches."""
    repo = open_repo()
    if name is None:
        for b in repo.branches(remotes=remotes):
            click.echo(f"{'*' if b.current else ' '} {b.name}")
        return
    if delete or force_delete:
        old = repo.delete_branch(name, force=force_delete)
        click.echo(f"Deleted branch {name} (was {short(old)}).")
        return
    repo.branch(name, rev, force=force)


@cli.command()
@click.option("-c", "--create", is_flag=True, help="Create the branch first.")
@click.option("-f", "--force", is_flag=True, help="Discard local changes.")
@click.argument("branch_name")
@click.argument("start", required=False, default="HEAD")
def switch(create: bool, force: bool, branch_name: str, start: str) -> None:
    """Switch to a branch."""
    result = open_repo().switch(branch_name, create=create, start=start, force=force)
    _warn_left_behind(result)
    if not is_quiet():
        click.echo(
            f"Switched to branch '{branch_name}' ({len(result.written)} written, "
            f"{len(result.removed)} removed)",
            err=True,
        )


def _warn_left_behind(result: CheckoutResult) -> None:
    """git's warning when a switch leaves commits of a detached HEAD that no ref reaches."""
    lost = result.left_behind
    if not lost:
        return
    click.echo(
        f"warning: you are leaving {len(lost)} commit(s) behind, not connected to any branch "
        f"or tag: {', '.join(c.hex()[:12] for c in lost[:5])}{' ...' if len(lost) > 5 else ''}\n"
        f"  to keep them: dsrepo branch NEW {lost[0].hex()[:12]} "
        "('dsrepo reflog' lists them later)",
        err=True,
    )


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Overwrite local changes.")
@click.option(
    "--into",
    type=click.Path(file_okay=False),
    help="Materialize into DIR; the working copy is untouched.",
)
@click.option(
    "--only", multiple=True, metavar="GLOB", help="Only files matching GLOB (repeatable)."
)
@click.option("--detach", is_flag=True, help="Detach HEAD even for a branch name.")
@click.argument("rev")
def checkout(force: bool, into: str | None, only: tuple[str, ...], detach: bool, rev: str) -> None:
    """Materialize REV: switch the working copy to it, or write it into another directory.

    With --only and no --into, the matching files are restored from REV into the working copy
    and HEAD does not move.
    """
    repo = open_repo()
    with Progress(f"checkout {rev}", is_quiet()) as progress:
        result = repo.checkout(
            rev, into=into, only=only, force=force, detach=detach, progress=progress
        )
    _warn_left_behind(result)
    if not is_quiet() and into is None and not only:
        if result.branch is not None:
            click.echo(f"Switched to branch '{result.branch}'", err=True)
        elif result.commit is not None:
            click.echo(f"HEAD is now at {result.commit.hex()[:12]} (detached)", err=True)
    if not is_quiet():
        click.echo(
            f"{rev}: {len(result.written)} file(s) written ({human(result.bytes_written)}), "
            f"{len(result.removed)} removed, {result.kept} unchanged",
            err=True,
        )


@cli.command()
@click.option("-s", "--source", help="Take the content from REV (default: the staging area).")
@click.option("--staged", is_flag=True, help="Restore the staging area from HEAD (unstage).")
@click.argument("paths", nargs=-1, required=True)
def restore(source: str | None, staged: bool, paths: tuple[str, ...]) -> None:
    """Restore files in the working copy (or the staging area) from a version."""
    open_repo().restore(*paths, source=source, staged=staged, cwd=Path.cwd())


@cli.command()
@click.option(
    "--strategy",
    type=click.Choice(["ours", "theirs", "first", "last"]),
    help="Decide conflicting paths explicitly (never done silently).",
)
@click.option("-m", "--message", type=UTF8, help="Merge commit message.")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata for the merge commit.")
@click.option("--no-commit", is_flag=True, help="Write the merged files but do not commit yet.")
@click.option("--no-ff", is_flag=True, help="Always record a merge commit.")
@click.option("--abort", "abort_", is_flag=True, help="Abandon an in-progress merge.")
@click.argument("revs", nargs=-1)
def merge(
    strategy: str | None,
    message: str | None,
    meta: tuple[str, ...],
    no_commit: bool,
    no_ff: bool,
    abort_: bool,
    revs: tuple[str, ...],
) -> None:
    """Merge one or more versions into HEAD (several at once: one commit with every parent)."""
    from dsrepo import parse_meta

    repo = open_repo()
    if abort_:
        repo.merge_abort()
        click.echo("merge aborted", err=True)
        return
    out = repo.merge(
        *revs,
        strategy=strategy,
        message=message,
        metadata=parse_meta(list(meta), None),
        no_commit=no_commit,
        no_ff=no_ff,
    )
    if out.kind == "up-to-date":
        click.echo("Already up to date.")
    elif out.kind == "fast-forward":
        click.echo(f"Fast-forward to {short(out.commit)}")
    elif out.kind == "staged":
        click.echo("Merged files written; review them, then 'dsrepo commit' (or 'merge --abort').")
    else:
        click.echo(f"Merged {', '.join(revs)}: {short(out.commit)}")
    for c in out.resolved:
        click.echo(f"resolved by --strategy {strategy}: {c.path} ({c.reason})", err=True)


@cli.command()
@click.option("--global", "global_", is_flag=True, help="Use the user-level config file.")
@click.option("--unset", is_flag=True, help="Remove the key.")
@click.option("-l", "--list", "list_", is_flag=True, help="List all settings.")
@click.argument("key", required=False)
@click.argument("value", required=False, type=UTF8)
def config(global_: bool, unset: bool, list_: bool, key: str | None, value: str | None) -> None:
    """Get or set configuration (user.name, user.email, remote.NAME.url, ...)."""
    from dsrepo import NotARepository, user_config

    repo = None
    if not global_:
        try:
            repo = open_repo()
        except NotARepository:
            # like git: reading (and --list) outside a repository reads the user-level config
            if unset or value is not None:
                raise
    target = user_config() if repo is None else repo.config.local
    assert target is not None
    if list_:
        for k, v in target.items():
            click.echo(f"{k}={v}")
        return
    if key is None:
        raise click.UsageError("give a KEY (or --list)")
    if unset:
        target.set(key, None)
        return
    if value is None:
        found = target.get(key) if repo is None else repo.config.get(key)
        if found is None:
            raise ConfigError(f"config key {key!r} is not set")
        click.echo(found)
        return
    target.set(key, value)
