"""Errors of the object layer: ids, encodings, the object store."""

from __future__ import annotations

from dsrepo.errors import DsrepoError


class ObjectError(DsrepoError):
    """Something is wrong with an object id, an object's bytes, or the object store."""


class InvalidId(ObjectError):
    """Text that is not a valid object id or id prefix."""

    exit_code = 4


class ObjectNotFound(ObjectError):
    """No object with this id (or prefix) is in the store."""

    exit_code = 4


class AmbiguousId(ObjectError):
    """An id prefix that matches more than one object."""

    exit_code = 4


class FormatError(ObjectError):
    """Bytes that do not decode as a canonical object of the expected type and version."""

    exit_code = 7


class CorruptObject(ObjectError):
    """Stored bytes whose hash does not match the id they are stored under."""

    exit_code = 7


class FileReadError(ObjectError):
    """A file the user asked to store cannot be read (permissions, vanished, I/O error)."""

    exit_code = 10


class FileChanged(ObjectError):
    """A file changed while it was being read; nothing was recorded under a torn id."""

    exit_code = 10
