"""Reading history: log, diff, show, ls-files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dsrepo import EntryKind, ObjectType, UnknownRevision
from dsrepo.cli.app import UTF8, cli, open_repo, paths_after_dashdash
from dsrepo.cli.output import format_date, human, write_lines, write_stdout

if TYPE_CHECKING:
    from dsrepo import DiffResult


@cli.command()
@click.option("--oneline", is_flag=True, help="One line per commit.")
@click.option("--graph", is_flag=True, help="Draw the history graph.")
@click.option("-n", "--max-count", type=int, help="Show at most N commits.")
@click.option("--all", "all_refs", is_flag=True, help="Every branch, tag and remote ref.")
@click.option("--grep", multiple=True, type=UTF8, help="Message matches REGEX (any --grep).")
@click.option("--author", multiple=True, type=UTF8, help="'Name <email>' matches REGEX.")
@click.option("--since", "--after", "since", help="Not older than DATE (2026-11-30, 2.weeks).")
@click.option("--until", "--before", "until", help="Not newer than DATE.")
@click.option("--meta", multiple=True, type=UTF8, help="KEY=VALUE, KEY~REGEX, KEY>N... (all).")
@click.option("-i", "--regexp-ignore-case", "ignore_case", is_flag=True)
@click.option("--all-match", is_flag=True, help="Every --grep must match.")
@click.argument("revs", nargs=-1)
def log(
    oneline: bool,
    graph: bool,
    max_count: int | None,
    all_refs: bool,
    grep: tuple[str, ...],
    author: tuple[str, ...],
    since: str | None,
    until: str | None,
    meta: tuple[str, ...],
    ignore_case: bool,
    all_match: bool,
    revs: tuple[str, ...],
) -> None:
    """Show history: commits reachable from REV (default HEAD). Use REV -- PATH to filter."""
    from dsrepo import LogFilter, parse_date, render_graph
    from dsrepo.cli.workflows import note_lines

    args = list(revs)
    ctx_args = click.get_current_context().args
    paths: list[str] = []
    after = paths_after_dashdash()
    if after:
        paths = list(after)
        args = args[: len(args) - len(after)]
    paths += ctx_args
    repo = open_repo()
    if repo.head_commit() is None and not args and not all_refs:
        raise UnknownRevision("no commits yet on this branch")
    where = None
    if grep or author or since or until or meta:
        where = LogFilter(
            grep,
            author,
            parse_date(since) if since else None,
            parse_date(until) if until else None,
            meta,
            ignore_case=ignore_case,
            all_match=all_match,
        )
    if where is not None or all_refs:
        entries = repo.search(
            args or ([] if all_refs else ["HEAD"]),
            where,
            all_refs=all_refs,
            max_count=max_count,
            paths=paths,
            cwd=Path.cwd(),
        )
    else:
        entries = repo.log(args or "HEAD", max_count=max_count, paths=paths, cwd=Path.cwd())
    deco = repo.decorations()
    notes = repo.notes() if not oneline else {}
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
        if e.id in notes:
            lines += [*note_lines(notes[e.id], "line"), ""]
        return lines

    if graph:
        # -n cut the history short: lanes to the commits not shown stay, as git draws them
        # (not when a filter dropped commits: their lanes would lead nowhere)
        truncated = (
            not paths and where is None and max_count is not None and len(order) >= max_count
        )
        parents = {
            h: tuple(p.hex() for p in by_id[h].commit.parents if truncated or p.hex() in by_id)
            for h in order
        }
        rows = render_graph(order, lambda h: parents.get(h, ()), truncated=truncated)
        for prefix, commit_hex in rows:
            if commit_hex is None:
                click.echo(prefix.rstrip())
                continue
            body = render(commit_hex)
            prefix = prefix.rstrip() + " "
            click.echo(f"{prefix}{body[0]}".rstrip())
            # an octopus's "*-." is drawn on its header line only
            pad = prefix.replace("*", "|").replace("-", " ").replace(".", " ")
            for line in body[1:]:
                click.echo(f"{pad}{line}".rstrip())
        return
    for h in order:
        for line in render(h):
            click.echo(line)


def _print_diff(result: DiffResult, mode: str) -> None:
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
        click.echo(f" {_totals(result)}")
        return
    for c in result.changes:
        if c.status == "R":
            click.echo(f"renamed:  {c.old_path} -> {c.path}")
        else:
            label = {"A": "added:", "D": "removed:", "M": "modified:"}[c.status]
            click.echo(f"{label:<10}{c.path}")
    if result.changes:
        click.echo(_totals(result))


def _totals(result: DiffResult) -> str:
    """The totals line of ``diff``, ``show`` and ``--stat``, in the units and forms of the
    lines above it: bytes added, bytes removed, the modified files' total size before -> after."""
    modified = [c for c in result.changes if c.status == "M"]
    before = sum(c.old.size for c in modified if c.old)
    after = sum(c.new.size for c in modified if c.new)
    return (
        f"{result.count('A')} added (+{human(result.bytes_added)}), "
        f"{result.count('D')} removed (-{human(result.bytes_removed)}), "
        f"{len(modified)} modified ({human(before)} -> {human(after)}), "
        f"{result.count('R')} renamed"
    )


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
    a = revs[0] if revs else None
    b = revs[1] if len(revs) > 1 else None
    result = open_repo().diff(a, b, paths, cached=cached, cwd=Path.cwd())
    _print_diff(result, "stat" if stat_ else "name-status" if name_status else "default")


def _split_paths(args: tuple[str, ...]) -> tuple[list[str], list[str]]:
    n = len(paths_after_dashdash())
    if n:
        return list(args[:-n]) if len(args) >= n else [], list(args[-n:])
    return list(args), []


@cli.command()
@click.option("--stat", "stat_", is_flag=True, default=True, hidden=True)
@click.option(
    "--meta-format",
    type=click.Choice(["line", "table", "json"]),
    default="line",
    help="Metadata as KEY = JSON lines, an aligned table, or indented JSON.",
)
@click.argument("rev", default="HEAD")
def show(stat_: bool, meta_format: str, rev: str) -> None:
    """Show a commit (metadata and change summary), a tag, or a file's content (REV:PATH)."""
    from dsrepo.cli.workflows import format_meta, note_lines

    repo = open_repo()
    r = repo.resolve(rev)
    if r.entry is not None and r.entry.kind != EntryKind.TREE:
        write_stdout(repo.read_file(r.entry))
        return
    if r.type == ObjectType.TREE:  # REV:DIR, "HEAD:" (the root) or a tree id
        for _, e in repo.ls_tree(rev):
            click.echo(e.name + ("/" if e.kind == EntryKind.TREE else ""))
        return
    oid = r.id
    if r.type == ObjectType.TAG:
        tag = repo.get_tag(oid)
        click.echo(f"tag {tag.name}\nTagger: {tag.tagger}\nDate:   {format_date(tag.tagger)}\n")
        click.echo(tag.message.rstrip("\n") + "\n")
        oid = tag.target
        if tag.target_type != ObjectType.COMMIT:
            return
    c = repo.get_commit(oid)
    click.echo(f"commit {oid.hex()}")
    if len(c.parents) > 1:
        click.echo("Merge: " + " ".join(p.hex()[:12] for p in c.parents))
    click.echo(f"Author: {c.author}\nDate:   {format_date(c.author)}")
    if meta_format == "line":
        for line in format_meta(c.metadata, "line"):
            click.echo(f"Meta:   {line}")
    elif c.metadata:
        click.echo("Meta:")
        for line in format_meta(c.metadata, meta_format):
            click.echo(f"    {line}".rstrip())
    click.echo("")
    for line in c.message.rstrip("\n").splitlines():
        click.echo(f"    {line}")
    click.echo("")
    note = repo.note(oid.hex())
    if note is not None:
        for line in note_lines(note, meta_format):
            click.echo(line)
        click.echo("")
    _print_diff(repo.changes(oid), "stat")


@cli.command("ls-files")
@click.option("-l", "long", is_flag=True, help="Show kind, size and content id.")
@click.argument("rev", required=False)
@click.argument("pattern", required=False)
def ls_files(long: bool, rev: str | None, pattern: str | None) -> None:
    """List files of REV (default: the staging area), optionally under PATTERN: a path or a glob,
    relative to the current directory like every path argument."""
    repo = open_repo()
    if rev is not None and pattern is None and any(ch in rev for ch in "*?["):
        rev, pattern = None, rev
    if not long:
        write_lines(repo.ls_paths(rev, pattern, cwd=Path.cwd()))
        return
    kinds = {EntryKind.FILE: "file", EntryKind.EXECUTABLE: "exec", EntryKind.SYMLINK: "link"}
    write_lines(
        f"{kinds.get(f.kind, '?')} {f.size:>12} {f.content_id.hex()}\t{f.path}"
        for f in repo.ls(rev, pattern, cwd=Path.cwd())
    )
