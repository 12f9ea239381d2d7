"""The root of every error dsrepo raises.

Each layer defines its own classes under :class:`DsrepoError`, next to the code that raises them::

    DsrepoError                       (dsrepo.errors)
    ├── BackendError                  (dsrepo.remotes.errors)  storage backends
    │   ├── KeyNotFound, KeyConflict, InvalidKey
    │   ├── TransientBackendError     retry may help (timeouts, throttling, 5xx)
    │   └── PermanentBackendError     retry will not help (denied, missing bucket)
    ├── ObjectError                   (dsrepo.objects.errors)  ids, encoding, store
    │   ├── InvalidId, ObjectNotFound, AmbiguousId
    │   ├── FormatError               bytes that do not decode canonically
    │   └── CorruptObject             bytes whose hash does not match their id
    └── RepositoryError               (dsrepo.dvcs.errors)  refs, working copy, history

Every class carries ``exit_code``: the CLI exits with it. The table of codes lives in docs/cli.md.
"""

from __future__ import annotations


class DsrepoError(Exception):
    """Base class of all dsrepo errors. ``str(err)`` is one line meant for the user."""

    exit_code: int = 1
