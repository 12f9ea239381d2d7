"""Errors raised by storage backends.

Backends translate their transport's exceptions (OSError, botocore errors, ...) into these at the
boundary, and mark each as transient (a retry may help) or permanent.
"""

from __future__ import annotations

from dsrepo.errors import DsrepoError


class BackendError(DsrepoError):
    """A storage backend failed."""

    exit_code = 8
    transient: bool = False


class InvalidKey(BackendError):
    """A key that is not a safe relative path (absolute, ``..``, empty component, control char)."""

    exit_code = 2


class KeyNotFound(BackendError):
    """The key does not exist."""


class KeyConflict(BackendError):
    """A conditional write lost: the key exists (put-if-absent) or its value changed (CAS)."""

    exit_code = 5


class TransientBackendError(BackendError):
    """A failure that may pass: timeout, throttling, connection reset, server error."""

    transient = True


class PermanentBackendError(BackendError):
    """A failure a retry will not fix: access denied, missing bucket, unsupported operation."""
