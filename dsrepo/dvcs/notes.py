"""Notes: metadata and text attached to a commit after the fact, without changing its id (git
notes).

The notes live under ``refs/notes/commits``, as in git: that ref names a *notes commit* whose
tree has one file per annotated commit, named by the commit's full hex id, holding the note as
a JSON object ``{"message": str, "metadata": {...}}``. Each change is a new notes commit whose
parent is the previous one, so the notes have a history of their own (``log
refs/notes/commits``) and travel with ``push`` and ``fetch`` like any ref (a fetched notes ref
lands in ``refs/notes/remotes/<remote>/commits`` unless the local one is absent or an ancestor).
A note does not keep its commit alive: gc may drop a commit whose only reference is a note.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs.errors import RefExists, RepositoryError
from dsrepo.dvcs.revisions import resolve_commit
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import Commit, TreeEntry

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

NOTES_REF = "refs/notes/commits"


@dataclass(frozen=True)
class Note:
    """The note of one commit."""

    commit: ObjectId
    message: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


def _tip(repo: Repository, ref: str = NOTES_REF) -> ObjectId | None:
    return repo.refs.resolve(ref)


def _files(repo: Repository, tip: ObjectId | None) -> dict[str, TreeEntry]:
    return repo.flatten(repo.commit_tree(tip))


def _decode(repo: Repository, commit: ObjectId, entry: TreeEntry) -> Note:
    raw = b"".join(repo.read_file(entry))
    try:
        doc = json.loads(raw)
        return Note(commit, str(doc.get("message", "")), dict(doc.get("metadata") or {}))
    except (ValueError, AttributeError, TypeError):
        return Note(commit, raw.decode("utf-8", "replace"))


def get_note(repo: Repository, rev: str, ref: str = NOTES_REF) -> Note | None:
    """The note of the commit ``rev`` names, or None."""
    cid = resolve_commit(repo, rev)
    return note_of(repo, cid, ref)


def note_of(repo: Repository, cid: ObjectId, ref: str = NOTES_REF) -> Note | None:
    tip = _tip(repo, ref)
    if tip is None:
        return None
    entry = repo.lookup_path(repo.store.get_commit(tip).tree, cid.hex())
    return None if entry is None else _decode(repo, cid, entry)


def all_notes(repo: Repository, ref: str = NOTES_REF) -> dict[ObjectId, Note]:
    """Every note, by commit id (``log`` reads them once)."""
    out: dict[ObjectId, Note] = {}
    for name, entry in _files(repo, _tip(repo, ref)).items():
        try:
            cid = ObjectId(bytes.fromhex(name))
        except ValueError:
            continue
        out[cid] = _decode(repo, cid, entry)
    return out


def set_note(
    repo: Repository,
    rev: str,
    message: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    edit: bool = False,
    force: bool = False,
    ref: str = NOTES_REF,
) -> Note:
    """``notes add`` (refuses when the commit has a note, unless ``force``, which replaces it)
    or, with ``edit``, ``notes edit``: the message replaced when given, metadata keys merged
    into the existing ones (a ``None`` value removes a key)."""
    cid = resolve_commit(repo, rev)
    tip = _tip(repo, ref)
    files = _files(repo, tip)
    name = cid.hex()
    old = _decode(repo, cid, files[name]) if name in files else None
    if edit:
        merged = dict(old.metadata) if old else {}
        for k, v in (metadata or {}).items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        note = Note(cid, message if message is not None else (old.message if old else ""), merged)
    else:
        if old is not None and not force:
            raise RefExists(
                f"commit {name[:12]} already has a note (use 'notes edit', or -f to replace it)"
            )
        note = Note(cid, message or "", dict(metadata or {}))
    if not note.message and not note.metadata:
        raise RepositoryError("a note needs a message (-m) or metadata (--meta, --meta-file)")
    doc = {"message": note.message, "metadata": dict(note.metadata)}
    data = json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()
    verb = "edit" if edit else "add"
    store = repo.store
    try:
        ref_ = store.write_bytes(data)
        files[name] = TreeEntry(name, EntryKind.FILE, ref_.size, ref_.content_id, ref_.manifest)
        _record(repo, files, tip, f"Notes {verb}ed by 'dsrepo notes {verb}'", ref)
    except BaseException:
        store.abort()
        raise
    return note


def remove_note(repo: Repository, rev: str, ref: str = NOTES_REF) -> ObjectId:
    cid = resolve_commit(repo, rev)
    tip = _tip(repo, ref)
    files = _files(repo, tip)
    if files.pop(cid.hex(), None) is None:
        raise RepositoryError(f"commit {cid.hex()[:12]} has no note")
    _record(repo, files, tip, "Notes removed by 'dsrepo notes remove'", ref)
    return cid


def _record(
    repo: Repository,
    files: Mapping[str, TreeEntry],
    tip: ObjectId | None,
    message: str,
    ref: str,
) -> None:
    from dsrepo.dvcs.commits import put_durable, write_tree

    store = repo.store
    who = repo.identity()
    tree = write_tree(store, files)
    c = Commit(tree, () if tip is None else (tip,), who, who, message + "\n", {})
    new = put_durable(store, c)
    repo.refs.update(ref, new, tip, who=who, message=message)
