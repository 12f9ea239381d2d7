"""Everyday commands: init, add, rm, mv, status, commit, log, show, diff, ls-files, tag, branch,
switch, checkout, restore, merge, config."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dsrepo.cli.main import cli, is_quiet, paths_after_dashdash
from dsrepo.cli.output import Progress, format_date, human
from dsrepo.cli.plumbing import open_repo
from dsrepo.dvcs.errors import ConfigError, UnknownRevision
from dsrepo.dvcs.refnames import shorten
from dsrepo.dvcs.repository import Repository
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind


def short(oid: ObjectId | None) -> str:
    return "(none)" if oid is None else oid.hex()[:12]


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("-b", "--initial-branch", default="main", show_default=True)
def init(directory: str, initial_branch: str) -> None:
    """Create an empty repository in DIRECTORY."""
    repo = Repository.init(directory, branch=initial_branch)
    if not is_quiet():
        click.echo(f"Initialized empty dsrepo repository in {repo.dsdir}")


@cli.command()
@click.argument("paths", nargs=-1, required=True)
def add(paths: tuple[str, ...]) -> None:
    """Stage files (directories recursively; '.' for all). Removed files are staged as removed."""
    repo = open_repo()
    progress = Progress("hashing", is_quiet())
    try:
        result = repo.worktree.add(paths, Path.cwd(), progress=progress)
    finally:
        progress.close()
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
    for p in repo.worktree.rm(paths, Path.cwd(), cached=cached, force=force):
        if not is_quiet():
            click.echo(f"rm '{p}'")


@cli.command()
@click.option("-f", "--force", is_flag=True)
@click.argument("source")
@click.argument("destination")
def mv(force: bool, source: str, destination: str) -> None:
    """Move or rename a tracked file or directory."""
    open_repo().worktree.mv(source, destination, Path.cwd(), force=force)


@cli.command()
@click.option("-s", "--short", "short_format", is_flag=True, help="One line per path.")
def status(short_format: bool) -> None:
    """Show staged, unstaged and untracked changes."""
    repo = open_repo()
    st = repo.status()
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
@click.option("-m", "--message", required=True, help="The commit message.")
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
    from dsrepo.dvcs.commits import parse_meta

    repo = open_repo()
    metadata = parse_meta(list(meta), meta_file)
    info = repo.commit(message, metadata, allow_empty=allow_empty, all=all_)
    branch = repo.head_branch()
    if not is_quiet():
        click.echo(
            f"[{shorten(branch) if branch else 'detached HEAD'} {short(info.id)}] {message.splitlines()[0]}"
        )


def _decorations(repo: Repository) -> dict[ObjectId, list[str]]:
    out: dict[ObjectId, list[str]] = {}
    head = repo.head_commit()
    branch = repo.head_branch()
    for name, oid in repo.refs.list("refs/").items():
        label = shorten(name)
        if name == branch:
            label = f"HEAD -> {label}"
        if name.startswith("refs/tags/"):
            label = f"tag: {label}"
            try:
                from dsrepo.dvcs.revisions import peel
                from dsrepo.objects.model import ObjectType

                oid = peel(repo, oid, ObjectType.COMMIT)
            except Exception:
                pass
        out.setdefault(oid, []).append(label)
    if branch is None and head is not None:
        out.setdefault(head, []).insert(0, "HEAD")
    return out


@cli.command()
@click.option("--oneline", is_flag=True, help="One line per commit.")
@click.option("--graph", is_flag=True, help="Draw the history graph.")
@click.option("-n", "--max-count", type=int, help="Show at most N commits.")
@click.argument("revs", nargs=-1)
def log(oneline: bool, graph: bool, max_count: int | None, revs: tuple[str, ...]) -> None:
    """Show history: commits reachable from REV (default HEAD). Use REV -- PATH to filter."""
    from dsrepo.dvcs.graph import render_graph
    from dsrepo.dvcs.history import log as log_fn

    args = list(revs)
    ctx_args = click.get_current_context().args
    paths: list[str] = []
    after = paths_after_dashdash()
    if after:
        paths = list(after)
        args = args[: len(args) - len(after)]
    paths += ctx_args
    repo = open_repo()
    if repo.head_commit() is None and not args:
        raise UnknownRevision("no commits yet on this branch")
    entries = log_fn(repo, args or ["HEAD"], max_count=max_count, paths=paths)
    deco = _decorations(repo)
    by_id = {e.id.hex(): e for e in entries}
    order = [e.id.hex() for e in entries]

    def render(e_hex: str) -> list[str]:
        e = by_id[e_hex]
        c = e.commit
        d = deco.get(e.id)
        dtext = f" ({', '.join(d)})" if d else ""
        if oneline:
            return [f"{e_hex[:12]}{dtext} {c.message.splitlines()[0] if c.message else ''}"]
        lines = [f"commit {e_hex}{dtext}"]
        if len(c.parents) > 1:
            lines.append("Merge: " + " ".join(p.hex()[:12] for p in c.parents))
        lines.append(f"Author: {c.author}")
        lines.append(f"Date:   {format_date(c.author)}")
        if c.metadata:
            lines.append(f"Meta:   {json.dumps(c.metadata, sort_keys=True)}")
        lines.append("")
        lines.extend(f"    {line}" for line in c.message.rstrip("\n").splitlines())
        lines.append("")
        return lines

    if graph:
        parents = {
            h: tuple(p.hex() for p in by_id[h].commit.parents if p.hex() in by_id) for h in order
        }
        for prefix, commit_hex in render_graph(order, lambda h: parents.get(h, ())):
            if commit_hex is None:
                click.echo(prefix.rstrip())
                continue
            body = render(commit_hex)
            prefix = prefix.rstrip() + " "
            click.echo(f"{prefix}{body[0]}".rstrip())
            pad = prefix.replace("*", "|")
            for line in body[1:]:
                click.echo(f"{pad}{line}".rstrip())
        return
    for h in order:
        for line in render(h):
            click.echo(line)


def _print_diff(result: object, mode: str) -> None:
    from dsrepo.dvcs.history import DiffResult

    assert isinstance(result, DiffResult)
    if mode == "name-status":
        for c in result.changes:
            if c.status == "R":
                click.echo(f"R100\t{c.old_path}\t{c.path}")
            else:
                click.echo(f"{c.status}\t{c.path}")
        return
    if mode == "stat":
        width = max(
            (
                len(c.path if c.status != "R" else f"{c.old_path} => {c.path}")
                for c in result.changes
            ),
            default=0,
        )
        for c in result.changes:
            name = c.path if c.status != "R" else f"{c.old_path} => {c.path}"
            old = c.old.size if c.old else 0
            new = c.new.size if c.new else 0
            if c.status == "R":
                change = "renamed"
            elif c.status == "A":
                change = f"+{human(new)}"
            elif c.status == "D":
                change = f"-{human(old)}"
            else:
                change = f"{human(old)} -> {human(new)}"
            click.echo(f" {name:<{width}} | {c.status} {change}")
        click.echo(f" {result.summary()}")
        return
    for c in result.changes:
        if c.status == "R":
            click.echo(f"renamed:  {c.old_path} -> {c.path}")
        else:
            label = {"A": "added:", "D": "removed:", "M": "modified:"}[c.status]
            click.echo(f"{label:<10}{c.path}")
    if result.changes:
        click.echo(result.summary())


@cli.command()
@click.option("--stat", "stat_", is_flag=True, help="Per-path sizes and a summary.")
@click.option("--name-status", is_flag=True, help="Status letter and path per line.")
@click.option(
    "--cached", "--staged", "cached", is_flag=True, help="HEAD (or REV) against the staging area."
)
@click.argument("args", nargs=-1)
def diff(stat_: bool, name_status: bool, cached: bool, args: tuple[str, ...]) -> None:
    """Compare versions: [REV [REV]] [-- PATH...]. Reports added, removed, modified and renamed
    (same content at a new path) files with their sizes."""
    revs, paths = _split_paths(args)
    if len(revs) > 2:
        raise click.UsageError("at most two revisions")
    repo = open_repo()
    from dsrepo.dvcs.history import diff as diff_fn

    a = revs[0] if revs else None
    b = revs[1] if len(revs) > 1 else None
    result = diff_fn(repo, repo.worktree, a, b, paths, cached=cached)
    _print_diff(result, "stat" if stat_ else "name-status" if name_status else "default")


def _split_paths(args: tuple[str, ...]) -> tuple[list[str], list[str]]:
    n = len(paths_after_dashdash())
    if n:
        return list(args[:-n]) if len(args) >= n else [], list(args[-n:])
    return list(args), []


@cli.command()
@click.option("--stat", "stat_", is_flag=True, default=True, hidden=True)
@click.argument("rev", default="HEAD")
def show(stat_: bool, rev: str) -> None:
    """Show a commit (metadata and change summary), a tag, or a file's content (REV:PATH)."""
    from dsrepo.dvcs.checkout import prefetch
    from dsrepo.dvcs.history import classify, diff_trees
    from dsrepo.dvcs.revisions import resolve
    from dsrepo.objects.model import ObjectType

    repo = open_repo()
    r = resolve(repo, rev)
    if r.entry is not None:
        if r.entry.kind == EntryKind.TREE:
            for e in repo.store.tree_entries(r.id):
                click.echo(e.name + ("/" if e.kind == EntryKind.TREE else ""))
            return
        prefetch(repo, [r.entry])
        for chunk in repo.store.read_chunks(r.entry):
            sys.stdout.buffer.write(chunk)
        return
    oid = r.id
    if r.type == ObjectType.TREE:  # e.g. "HEAD:" (the root) or a tree id
        for e in repo.store.tree_entries(oid):
            click.echo(e.name + ("/" if e.kind == EntryKind.TREE else ""))
        return
    if r.type == ObjectType.TAG:
        tag = repo.store.get_tag(oid)
        click.echo(f"tag {tag.name}\nTagger: {tag.tagger}\nDate:   {format_date(tag.tagger)}\n")
        click.echo(tag.message.rstrip("\n") + "\n")
        oid = tag.target
        if tag.target_type != ObjectType.COMMIT:
            return
    c = repo.store.get_commit(oid)
    click.echo(f"commit {oid.hex()}")
    if len(c.parents) > 1:
        click.echo("Merge: " + " ".join(p.hex()[:12] for p in c.parents))
    click.echo(f"Author: {c.author}\nDate:   {format_date(c.author)}")
    for k, v in sorted(c.metadata.items()):
        click.echo(f"Meta:   {k} = {json.dumps(v, sort_keys=True)}")
    click.echo("")
    for line in c.message.rstrip("\n").splitlines():
        click.echo(f"    {line}")
    click.echo("")
    parent_tree = repo.store.get_commit(c.parents[0]).tree if c.parents else None
    _print_diff(classify(diff_trees(repo, parent_tree, c.tree)), "stat")


@cli.command("ls-files")
@click.option("-l", "long", is_flag=True, help="Show kind, size and content id.")
@click.argument("rev", required=False)
@click.argument("pattern", required=False)
def ls_files(long: bool, rev: str | None, pattern: str | None) -> None:
    """List files of REV (default: the staging area), optionally matching a glob."""
    repo = open_repo()
    if rev is not None and pattern is None and any(ch in rev for ch in "*?["):
        rev, pattern = None, rev
    total = 0
    for f in repo.ls(rev, pattern):
        total += f.size
        if long:
            kind = {
                EntryKind.FILE: "file",
                EntryKind.EXECUTABLE: "exec",
                EntryKind.SYMLINK: "link",
            }.get(f.kind, "?")
            click.echo(f"{kind} {f.size:>12} {f.content_id.hex()}\t{f.path}")
        else:
            click.echo(f.path)


@cli.command()
@click.option("-a", "--annotate", is_flag=True, help="Make an annotated tag (needs -m).")
@click.option("-m", "--message", help="Tag message (implies -a).")
@click.option(
    "-l", "--list", "list_", is_flag=True, help="List tags (optionally matching PATTERN)."
)
@click.option("-d", "--delete", is_flag=True, help="Delete the tag.")
@click.option("-f", "--force", is_flag=True, help="Replace an existing tag.")
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
    from dsrepo.dvcs.commits import create_tag, delete_tag, list_tags

    repo = open_repo()
    if list_ or name is None:
        for t in list_tags(repo, name):
            if t.annotated and t.tag is not None:
                click.echo(f"{t.name:<20} {t.tag.message.splitlines()[0] if t.tag.message else ''}")
            else:
                click.echo(t.name)
        return
    if delete:
        old = delete_tag(repo, name)
        click.echo(f"Deleted tag '{name}' (was {short(old)})")
        return
    if annotate and message is None:
        raise click.UsageError("an annotated tag needs a message (-m)")
    create_tag(repo, name, rev, message=message, force=force)


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
    from dsrepo.dvcs.commits import create_branch, delete_branch, list_branches

    repo = open_repo()
    if name is None:
        for b in list_branches(repo, remotes=remotes):
            click.echo(f"{'*' if b.current else ' '} {b.name}")
        return
    if delete or force_delete:
        old = delete_branch(repo, name, force=force_delete)
        click.echo(f"Deleted branch {name} (was {short(old)}).")
        return
    create_branch(repo, name, rev, force=force)


@cli.command()
@click.option("-c", "--create", is_flag=True, help="Create the branch first.")
@click.option("-f", "--force", is_flag=True, help="Discard local changes.")
@click.argument("branch_name")
@click.argument("start", required=False, default="HEAD")
def switch(create: bool, force: bool, branch_name: str, start: str) -> None:
    """Switch to a branch."""
    from dsrepo.dvcs.checkout import switch as switch_fn

    repo = open_repo()
    result = switch_fn(repo, repo.worktree, branch_name, create=create, start=start, force=force)
    if not is_quiet():
        click.echo(
            f"Switched to branch '{branch_name}' ({len(result.written)} written, "
            f"{len(result.removed)} removed)",
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
    from dsrepo.dvcs import checkout as co

    repo = open_repo()
    progress = Progress(f"checkout {rev}", is_quiet())
    try:
        if into is not None:
            result = co.materialize_into(
                repo, rev, Path(into), only=list(only) or None, force=force, progress=progress
            )
        elif only:
            result = co.restore_matching(repo, repo.worktree, list(only), rev)
        else:
            result = co.checkout(
                repo, repo.worktree, rev, force=force, detach=detach, progress=progress
            )
    finally:
        progress.close()
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
    from dsrepo.dvcs.checkout import restore as restore_fn

    repo = open_repo()
    restore_fn(repo, repo.worktree, paths, source=source, staged=staged, cwd=Path.cwd())


@cli.command()
@click.option(
    "--strategy",
    type=click.Choice(["ours", "theirs", "first", "last"]),
    help="Decide conflicting paths explicitly (never done silently).",
)
@click.option("-m", "--message", help="Merge commit message.")
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
    from dsrepo.dvcs import merging
    from dsrepo.dvcs.commits import parse_meta
    from dsrepo.dvcs.merge import Strategy

    repo = open_repo()
    if abort_:
        merging.abort(repo, repo.worktree)
        click.echo("merge aborted", err=True)
        return
    out = merging.merge(
        repo,
        repo.worktree,
        revs,
        strategy=Strategy(strategy) if strategy else None,
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
@click.argument("value", required=False)
def config(global_: bool, unset: bool, list_: bool, key: str | None, value: str | None) -> None:
    """Get or set configuration (user.name, user.email, remote.NAME.url, ...)."""
    from dsrepo.dvcs.config import Config, ConfigFile, global_config_path

    if global_:
        target = ConfigFile(global_config_path())
    else:
        repo = open_repo()
        assert repo.config.local is not None
        target = repo.config.local
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
        found = target.get(key) if global_ else Config(target.path).get(key)
        if found is None:
            raise ConfigError(f"config key {key!r} is not set")
        click.echo(found)
        return
    target.set(key, value)


# ---------------------------------------------------------------- remotes


@cli.group(invoke_without_command=True)
@click.option("-v", "--verbose", is_flag=True, help="Show URLs.")
@click.pass_context
def remote(ctx: click.Context, verbose: bool) -> None:
    """Manage remotes (a directory path, file:// URL or s3://BUCKET/PREFIX)."""
    if ctx.invoked_subcommand is not None:
        return
    from dsrepo.dvcs.sync import remote_names, remote_url

    repo = open_repo()
    for name in remote_names(repo):
        if verbose:
            url, _ = remote_url(repo, name)
            click.echo(f"{name}\t{url}")
        else:
            click.echo(name)


@remote.command("add")
@click.option("--endpoint-url", help="S3-compatible endpoint (MinIO, Ceph, ...).")
@click.option("--region", help="S3 region.")
@click.option("--profile", help="AWS profile to use (credentials stay in ~/.aws).")
@click.argument("name")
@click.argument("url")
def remote_add(
    endpoint_url: str | None, region: str | None, profile: str | None, name: str, url: str
) -> None:
    """Add a remote."""
    from dsrepo.dvcs.sync import add_remote

    add_remote(open_repo(), name, url, endpoint_url=endpoint_url, region=region, profile=profile)


@remote.command("remove")
@click.argument("name")
def remote_remove(name: str) -> None:
    """Remove a remote and its remote-tracking refs."""
    from dsrepo.dvcs.sync import remove_remote

    remove_remote(open_repo(), name)


@remote.command("rename")
@click.argument("old")
@click.argument("new")
def remote_rename(old: str, new: str) -> None:
    """Rename a remote (and its remote-tracking refs)."""
    from dsrepo.dvcs.sync import rename_remote

    rename_remote(open_repo(), old, new)


@remote.command("set-url")
@click.argument("name")
@click.argument("url")
def remote_set_url(name: str, url: str) -> None:
    """Change a remote's URL."""
    from dsrepo.dvcs.sync import set_url

    set_url(open_repo(), name, url)


@cli.command()
@click.option("--tags", is_flag=True, help="Push every tag too.")
@click.option("-f", "--force", is_flag=True, help="Allow non-fast-forward updates.")
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be updated; send nothing.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Parallel uploads.",
)
@click.argument("remote_name", metavar="REMOTE", required=False)
@click.argument("refs", nargs=-1)
def push(
    tags: bool,
    force: bool,
    dry_run: bool,
    jobs: int,
    remote_name: str | None,
    refs: tuple[str, ...],
) -> None:
    """Send refs and the objects the remote lacks; refs move last, by compare-and-swap."""
    from dsrepo.dvcs.sync import PushRejected
    from dsrepo.dvcs.sync import push as push_fn
    from dsrepo.dvcs.upstream import default_remote, set_upstream

    repo = open_repo()
    remote_name = remote_name or default_remote(repo)
    progress = Progress(f"push {remote_name}", is_quiet(), unit="objects")
    try:
        result = push_fn(
            repo,
            remote_name,
            refs,
            tags=tags,
            force=force,
            dry_run=dry_run,
            jobs=jobs,
            progress=progress,
        )
    finally:
        progress.close()
    branch = repo.head_branch()
    for u in result.updates:
        old = short(u.old) if u.old else "(new)"
        click.echo(
            f"{u.status:>12}  {shorten(u.ref)}  {old} -> {short(u.new)}"
            + (f"  ({u.reason})" if u.reason else "")
        )
        if (
            u.status == "ok"
            and branch == u.ref
            and repo.config.get(f"branch.{shorten(u.ref)}.remote") is None
        ):
            from dsrepo.dvcs.sync import remote_names

            if remote_name in remote_names(repo):
                set_upstream(repo, shorten(u.ref), remote_name)
    s = result.stats
    if not is_quiet() and s.objects:
        click.echo(
            f"sent {s.objects} objects in {s.packs} packs ({human(s.bytes)}), {s.requests} requests",
            err=True,
        )
    if not result.ok:
        raise PushRejected(
            "some refs were rejected: "
            + ", ".join(
                f"{shorten(u.ref)} ({u.reason})" for u in result.updates if u.status == "rejected"
            )
        )


@cli.command()
@click.option("--prune", is_flag=True, help="Delete remote-tracking refs the remote no longer has.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=8, show_default=True)
@click.argument("remote_name", metavar="REMOTE", required=False)
def fetch(prune: bool, jobs: int, remote_name: str | None) -> None:
    """Download the objects and refs the remote has and this repository lacks."""
    from dsrepo.dvcs.sync import fetch as fetch_fn
    from dsrepo.dvcs.upstream import default_remote

    repo = open_repo()
    remote_name = remote_name or default_remote(repo)
    progress = Progress(f"fetch {remote_name}", is_quiet())
    try:
        result = fetch_fn(repo, remote_name, prune=prune, jobs=jobs, progress=progress)
    finally:
        progress.close()
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
@click.option("--strategy", type=click.Choice(["ours", "theirs", "first", "last"]))
@click.argument("remote_name", metavar="REMOTE", required=False)
@click.argument("branch_name", metavar="BRANCH", required=False)
def pull(strategy: str | None, remote_name: str | None, branch_name: str | None) -> None:
    """Fetch, then fast-forward or merge (with merge's rules: conflicts stop, nothing is lost)."""
    from dsrepo.dvcs.merge import Strategy
    from dsrepo.dvcs.merging import MergeOutcome
    from dsrepo.dvcs.sync import pull as pull_fn

    repo = open_repo()
    out = pull_fn(
        repo,
        remote_name,
        branch_name,
        strategy=Strategy(strategy) if strategy else None,
        progress=Progress("pull", is_quiet()),
    )
    assert isinstance(out, MergeOutcome)
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
@click.option("--endpoint-url", help="S3-compatible endpoint.")
@click.option("--region")
@click.option("--profile")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=8, show_default=True)
@click.argument("url")
@click.argument("directory", required=False)
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
    from dsrepo.dvcs.sync import clone as clone_fn
    from dsrepo.remotes.urls import S3Options

    progress = Progress("clone", is_quiet())
    try:
        repo = clone_fn(
            url,
            directory,
            branch=branch_name,
            only=list(only) or None,
            jobs=jobs,
            s3=S3Options(endpoint_url, region, profile),
            progress=progress,
        )
    finally:
        progress.close()
    if not is_quiet():
        click.echo(f"Cloned {url} into {repo.root}", err=True)


@cli.command()
@click.option("--only", multiple=True, metavar="GLOB", help="Only files matching GLOB.")
@click.option("-f", "--force", is_flag=True, help="Overwrite differing files in DIR.")
@click.option("--endpoint-url")
@click.option("--region")
@click.option("--profile")
@click.argument("url")
@click.argument("directory")
def get(
    only: tuple[str, ...],
    force: bool,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    url: str,
    directory: str,
) -> None:
    """Materialize URL[@REV] into DIRECTORY for a read-only job, through a user-level cache
    (``$DSREPO_CACHE_DIR``, default ~/.cache/dsrepo/cache) so nothing is downloaded twice."""
    from dsrepo.dvcs.checkout import CheckoutResult
    from dsrepo.dvcs.sync import get as get_fn
    from dsrepo.remotes.urls import S3Options

    rev = None
    if "@" in url.rsplit("/", 1)[-1]:
        url, rev = url.rsplit("@", 1)
    progress = Progress("get", is_quiet())
    try:
        result = get_fn(
            url,
            directory,
            rev=rev,
            only=list(only) or None,
            force=force,
            s3=S3Options(endpoint_url, region, profile),
            progress=progress,
        )
    finally:
        progress.close()
    assert isinstance(result, CheckoutResult)
    if not is_quiet():
        click.echo(
            f"{len(result.written)} file(s) written ({human(result.bytes_written)}), {result.kept} unchanged",
            err=True,
        )
