"""Dataset workflows: verify (a directory against a version), sync (stage an outside folder)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from dsrepo import RepositoryError, shorten
from dsrepo.cli.app import UTF8, cli, is_quiet, open_repo
from dsrepo.cli.output import Progress, short

if TYPE_CHECKING:
    from dsrepo import Note


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("rev", default="HEAD")
def verify(directory: str, rev: str) -> None:
    """Compare DIRECTORY with version REV (default HEAD): list files missing there (D), extra
    (?) and modified (M); exit 1 if any. The working copy is checked through the stat cache."""
    repo = open_repo()
    with Progress("verifying", is_quiet()) as progress:
        result = repo.verify(directory, rev, progress=progress)
    for code, path in result.rows():
        click.echo(f"{code} {path}")
    if not result.ok:  # exit 1, saying why on stderr (even with -q)
        counts = f"{len(result.missing)} missing, {len(result.extra)} extra"
        raise RepositoryError(
            f"{directory} differs from {rev}: {counts}, {len(result.modified)} modified"
        )
    if not is_quiet():
        click.echo(f"{directory}: {result.checked} files match {rev}", err=True)


@cli.command("sync")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("-m", "--message", type=UTF8, help="Also commit, with this message.")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata of that commit.")
@click.option(
    "--meta-file", type=click.Path(dir_okay=False), help="Metadata from a JSON object file."
)
def sync_folder(
    directory: str, message: str | None, meta: tuple[str, ...], meta_file: str | None
) -> None:
    """Make the staged snapshot equal to DIRECTORY, a folder outside the working copy (added,
    modified, deleted and renamed files; only new chunks are stored), without copying it into
    the working copy. With -m, commit it too."""
    from dsrepo import parse_meta

    if (meta or meta_file) and message is None:
        raise click.UsageError("--meta and --meta-file go with -m (they describe the commit)")
    repo = open_repo()
    metadata = parse_meta(list(meta), meta_file) if message is not None else None
    with Progress("hashing", is_quiet()) as progress:
        result = repo.sync(directory, message, metadata, progress=progress)
    for p in result.added:
        click.echo(f"A\t{p}")
    for p in result.modified:
        click.echo(f"M\t{p}")
    for p in result.deleted:
        click.echo(f"D\t{p}")
    for a, b in result.renamed:
        click.echo(f"R\t{a}\t{b}")
    if result.commit is not None and message is not None and not is_quiet():
        branch = repo.head_branch()
        where = shorten(branch) if branch else "detached HEAD"
        click.echo(f"[{where} {short(result.commit.id)}] {message.splitlines()[0]}")


# ---- notes


def _cell(v: object) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return f"{v:.6g}"
    return json.dumps(v, sort_keys=True)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def format_meta(metadata: Mapping[str, Any], fmt: str) -> list[str]:
    """Metadata as ``show``/``log`` print it: ``line`` (one ``KEY = JSON`` line per key),
    ``json`` (indented), or ``table``: scalars as ``KEY  VALUE`` rows; a list of objects (records)
    or an object of objects (statistics per column) as an aligned table under its key."""
    if fmt == "json":
        return json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    if fmt == "line":
        return [f"{k} = {json.dumps(v, sort_keys=True)}" for k, v in sorted(metadata.items())]
    scalars: list[list[str]] = []
    blocks: list[str] = []
    for k, v in sorted(metadata.items()):
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            cols = list(dict.fromkeys(c for r in v for c in r))
            rows = [cols] + [[_cell(r.get(c, "")) for c in cols] for r in v]
            blocks += ["", f"{k}:", *_table(rows)]
        elif isinstance(v, dict) and v and all(isinstance(r, dict) for r in v.values()):
            cols = list(dict.fromkeys(c for r in v.values() for c in r))
            rows = [["", *cols]] + [
                [name, *(_cell(r.get(c, "")) for c in cols)] for name, r in v.items()
            ]
            blocks += ["", f"{k}:", *_table(rows)]
        elif isinstance(v, dict):
            scalars += [[f"{k}.{sk}", _cell(sv)] for sk, sv in v.items()]
        else:
            scalars.append([k, _cell(v)])
    width = max((len(r[0]) for r in scalars), default=0)
    return [f"{a.ljust(width)}  {b}" for a, b in scalars] + (blocks[1:] if not scalars else blocks)


def note_lines(note: Note, meta_format: str) -> list[str]:
    """A note as ``log`` and ``show`` print it, after the message (git's "Notes:" block)."""
    lines = ["Notes:"]
    lines += [f"    {line}" for line in note.message.rstrip("\n").splitlines()]
    lines += [f"    {line}".rstrip() for line in format_meta(note.metadata, meta_format)]
    return lines


@cli.group()
def notes() -> None:
    """Metadata and text attached to a commit after the fact, without changing its id (like git
    notes; kept under refs/notes/commits: 'push REMOTE refs/notes/commits' sends them, fetch
    takes them when they fast-forward)."""


def _note_args(meta: tuple[str, ...], meta_file: str | None) -> dict[str, Any] | None:
    from dsrepo import parse_meta

    return parse_meta(list(meta), meta_file) if meta or meta_file else None


_NOTE_OPTIONS = [
    click.option("-m", "--message", type=UTF8, help="The note's text."),
    click.option(
        "--meta", multiple=True, metavar="KEY=VALUE", help="Metadata (VALUE may be JSON)."
    ),
    click.option("--meta-file", type=click.Path(dir_okay=False), help="Metadata from a JSON file."),
]


def _with_note_options(f: Any) -> Any:
    for option in reversed(_NOTE_OPTIONS):
        f = option(f)
    return f


@notes.command("add")
@click.option("-f", "--force", is_flag=True, help="Replace an existing note.")
@_with_note_options
@click.argument("rev", default="HEAD")
def notes_add(
    force: bool, message: str | None, meta: tuple[str, ...], meta_file: str | None, rev: str
) -> None:
    """Attach a note to REV (default HEAD); a commit that has one refuses without -f."""
    open_repo().add_note(rev, message, _note_args(meta, meta_file), force=force)


@notes.command("edit")
@_with_note_options
@click.argument("rev", default="HEAD")
def notes_edit(message: str | None, meta: tuple[str, ...], meta_file: str | None, rev: str) -> None:
    """Change REV's note: -m replaces the text, --meta keys are merged (KEY=null removes one)."""
    open_repo().edit_note(rev, message, _note_args(meta, meta_file))


@notes.command("show")
@click.option("--meta-format", type=click.Choice(["line", "table", "json"]), default="table")
@click.argument("rev", default="HEAD")
def notes_show(meta_format: str, rev: str) -> None:
    """Print REV's note (exit 1 when it has none)."""
    note = open_repo().note(rev)
    if note is None:
        raise RepositoryError(f"no note found for {rev}")
    if note.message:
        click.echo(note.message.rstrip("\n"))
    if note.metadata:
        if note.message:
            click.echo("")
        for line in format_meta(note.metadata, meta_format):
            click.echo(line)


@notes.command("remove")
@click.argument("rev", default="HEAD")
def notes_remove(rev: str) -> None:
    """Remove REV's note."""
    open_repo().remove_note(rev)


@notes.command("list")
def notes_list() -> None:
    """List the commits that have a note: commit id, then the note's first line."""
    for cid, note in sorted(open_repo().notes().items()):
        first = note.message.splitlines()[0] if note.message else ""
        click.echo(f"{cid.hex()[:12]} {first}".rstrip())


@cli.command()
@click.argument("revrange", metavar="A..B")
@click.option("-m", "--message", type=UTF8, required=True, help="The new version's message.")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata (VALUE may be JSON).")
@click.option("--meta-file", type=click.Path(dir_okay=False), help="Metadata from a JSON file.")
@click.option("-b", "--branch", help="Create this branch at the new version (no other ref moves).")
def squash(
    revrange: str,
    message: str,
    meta: tuple[str, ...],
    meta_file: str | None,
    branch: str | None,
) -> None:
    """Make one version out of the range A..B: B's files on top of A, the range's metadata
    merged. The current branch moves to it when B is its tip; the squashed versions stay
    reachable from the reflog until gc."""
    from dsrepo import parse_meta

    repo = open_repo()
    info = repo.squash(revrange, message, parse_meta(list(meta), meta_file), branch=branch)
    if not is_quiet():
        squashed = info.commit.metadata.get("squashed", [])
        if branch is None and repo.head_commit() == info.id:
            head = repo.head_branch()
            branch = shorten(head) if head else "detached HEAD"
        where = branch or "not on a branch"
        click.echo(f"[{where} {short(info.id)}] {message.splitlines()[0]}")
        click.echo(f"squashed {len(squashed)} versions", err=True)
