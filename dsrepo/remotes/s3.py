"""A backend on Amazon S3 or a compatible server, through boto3.

Key ``k`` is the object ``<prefix>/k`` in the bucket. Conditional writes use S3's
``If-None-Match: *`` (create only) and ``If-Match: <etag>`` (replace or delete only that
version); :func:`probe_conditional_writes` checks that a server honours them, since some
S3-compatible servers silently ignore the headers, which would make ref updates unsafe.

Every botocore exception is translated at this boundary: missing keys become KeyNotFound,
throttling, 5xx and network failures TransientBackendError, missing buckets and refused
credentials PermanentBackendError.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
import botocore.exceptions as bce
from botocore.config import Config

from dsrepo.remotes.base import Backend, Capabilities, KeyInfo
from dsrepo.remotes.errors import (
    BackendError,
    InvalidKey,
    KeyConflict,
    KeyNotFound,
    PermanentBackendError,
    TransientBackendError,
)
from dsrepo.remotes.keys import validate_key, validate_prefix
from dsrepo.remotes.memory import check_range

T = TypeVar("T")

MiB = 1024 * 1024

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
    "403",
}
_TRANSIENT = {
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
}
_PRECONDITION = {"PreconditionFailed", "412"}
_CONDITIONAL_CONFLICT = "ConditionalRequestConflict"


class _Unsupported(PermanentBackendError):
    """The server answered 501 NotImplemented to a conditional request."""


def client_config(
    *,
    max_pool_connections: int = 32,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    max_attempts: int = 3,
) -> Config:
    """The botocore configuration S3Backend uses: pooled connections, bounded waits."""
    return Config(
        max_pool_connections=max_pool_connections,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
    )


def _error_code(exc: Any) -> tuple[str, int]:
    """The S3 error code and HTTP status of a ClientError."""
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _timestamp(value: Any) -> float | None:
    """S3's ``LastModified`` (a datetime from boto3) as seconds since the epoch."""
    stamp = getattr(value, "timestamp", None)
    return float(stamp()) if callable(stamp) else None


class S3Backend(Backend):
    """Keys stored as objects under ``prefix/`` in ``bucket``.

    Pass ``client`` to share a configured boto3 client (the backend then does not close it);
    otherwise one is built from ``profile``, ``region`` and ``endpoint_url`` with
    :func:`client_config`. Values larger than ``multipart_threshold`` are uploaded in parts of
    ``part_size`` bytes.
    """

    capabilities = Capabilities(conditional_writes=True, range_reads=True, local=False)
    multipart_threshold: int = 32 * MiB
    part_size: int = 16 * MiB
    conditional_conflict_retries: int = 3

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        max_pool_connections: int = 32,
        client: Any = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise PermanentBackendError(f"invalid S3 bucket name {bucket!r}")
        prefix = prefix.strip("/")
        if prefix:
            try:
                validate_key(prefix)
            except InvalidKey as exc:
                raise PermanentBackendError(f"invalid S3 prefix {prefix!r}: {exc}") from None
        self.bucket = bucket
        self.prefix = prefix
        self._root = prefix + "/" if prefix else ""
        self._owns_client = client is None
        self._bucket_exists = False
        if client is None:
            try:
                session = boto3.session.Session(profile_name=profile, region_name=region)
                client = session.client(
                    "s3",
                    endpoint_url=endpoint_url,
                    config=client_config(max_pool_connections=max_pool_connections),
                )
            except bce.ProfileNotFound:
                raise PermanentBackendError(
                    f"AWS profile {profile!r} not found in the AWS config files"
                ) from None
            except bce.BotoCoreError as exc:
                raise PermanentBackendError(
                    f"cannot set up an S3 client: {_one_line(str(exc))}"
                ) from None
        self.client: Any = client

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def close(self) -> None:
        if self._owns_client and self.client is not None:
            self.client.close()
            self._owns_client = False

    # -- reads ------------------------------------------------------------------------------

    def stat(self, key: str) -> KeyInfo:
        obj = self._object(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=obj)
        except bce.ClientError as exc:
            code, status = _error_code(exc)
            if code in _NOT_FOUND or status == 404:
                self._check_bucket()  # HEAD answers a bare 404 for a missing bucket, too
                raise KeyNotFound(f"key {key!r} not found in {self.describe()}") from None
            raise self._error(exc, "stat", key) from None
        except bce.BotoCoreError as exc:
            raise self._error(exc, "stat", key) from None
        return KeyInfo(key, int(head["ContentLength"]), _timestamp(head.get("LastModified")))

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        obj = self._object(key)
        check_range(offset, length)
        if length == 0:
            self.stat(key)  # still raise KeyNotFound for a missing key
            return b""
        kwargs: dict[str, Any] = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            kwargs["Range"] = f"bytes={offset}-{end}"
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=obj, **kwargs)
            body = response["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()
        except bce.ClientError as exc:
            code, status = _error_code(exc)
            if code == "InvalidRange" or status == 416:
                return b""  # the range starts at or past the end
            raise self._error(exc, "get", key) from None
        except bce.BotoCoreError as exc:
            raise self._error(exc, "get", key) from None

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int = 1000
    ) -> list[KeyInfo]:
        validate_prefix(prefix)
        if limit <= 0:
            return []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._root + prefix}
        if start_after is not None:
            kwargs["StartAfter"] = self._root + start_after
        out: list[KeyInfo] = []
        cut = len(self._root)
        try:
            while len(out) < limit:
                kwargs["MaxKeys"] = min(limit - len(out), 1000)
                response = self.client.list_objects_v2(**kwargs)
                for item in response.get("Contents", []):
                    key = str(item["Key"])[cut:]
                    try:
                        validate_key(key)
                    except InvalidKey:
                        continue  # e.g. "folder/" markers made by other tools
                    out.append(
                        KeyInfo(key, int(item["Size"]), _timestamp(item.get("LastModified")))
                    )
                if not response.get("IsTruncated"):
                    break
                kwargs["ContinuationToken"] = response["NextContinuationToken"]
        except (bce.ClientError, bce.BotoCoreError) as exc:
            raise self._error(exc, "list", prefix or "/") from None
        return out[:limit]

    # -- writes -----------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        obj = self._object(key)
        try:
            if len(data) > self.multipart_threshold:
                self._put_multipart(obj, data)
            else:
                self.client.put_object(Bucket=self.bucket, Key=obj, Body=data)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            raise self._error(exc, "put", key) from None

    def _put_multipart(self, obj: str, data: bytes) -> None:
        """Upload ``data`` in parts; the object appears atomically when the upload completes."""
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=obj)
        upload_id = upload["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, len(data), self.part_size), 1):
                part = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=obj,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data[start : start + self.part_size],
                )
                parts.append({"ETag": part["ETag"], "PartNumber": number})
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=obj,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            # The original error matters more; lifecycle rules reap leftover parts.
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=obj, UploadId=upload_id)
            raise

    def put_if_absent(self, key: str, data: bytes) -> bool:
        obj = self._object(key)
        for attempt in range(self.conditional_conflict_retries + 1):
            try:
                self.client.put_object(Bucket=self.bucket, Key=obj, Body=data, IfNoneMatch="*")
                return True
            except bce.ClientError as exc:
                code, status = _error_code(exc)
                if code in _PRECONDITION or status == 412:
                    return False
                if code != _CONDITIONAL_CONFLICT or attempt == self.conditional_conflict_retries:
                    raise self._error(exc, "put_if_absent", key) from None
            except bce.BotoCoreError as exc:
                raise self._error(exc, "put_if_absent", key) from None
            time.sleep(0.05 * 2**attempt)  # a concurrent conditional write is in flight
        raise AssertionError("unreachable")

    def delete(self, key: str) -> None:
        obj = self._object(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=obj)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            code, status = _error_code(exc)
            if code in _NOT_FOUND or (status == 404 and code != "NoSuchBucket"):
                return  # S3 itself answers 204 for a missing key; some servers say 404
            raise self._error(exc, "delete", key) from None

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        obj = self._object(key)
        if expected is None and new is None:
            if self._exists(key):
                raise self._lost(key, "the key exists")
            return
        etag: str | None = None
        if expected is not None:
            current, etag = self._read_with_etag(key)
            if current is None:
                raise self._lost(key, "the key is absent")
            if current != expected:
                raise self._lost(key, "the key has a different value")
        try:
            if new is not None:
                condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
                self._conditional(
                    key,
                    "the key exists" if etag is None else "the key changed",
                    lambda: self.client.put_object(
                        Bucket=self.bucket, Key=obj, Body=new, **condition
                    ),
                )
            else:
                self._conditional_delete(key, obj, str(etag))
        except KeyConflict:
            # botocore retries a request whose answer was lost; if the first try landed, the
            # retry fails its condition. The key holding ``new`` means the swap is done.
            if self._read_with_etag(key)[0] == new:
                return
            raise

    def _conditional_delete(self, key: str, obj: str, etag: str) -> None:
        try:
            self._conditional(
                key,
                "the key changed",
                lambda: self.client.delete_object(Bucket=self.bucket, Key=obj, IfMatch=etag),
            )
        except _Unsupported:
            # The server cannot delete conditionally. Best effort: re-check, then delete. A
            # writer that lands between the two steps loses its update (a known, narrow gap).
            if self._read_with_etag(key)[1] != etag:
                raise self._lost(key, "the key changed") from None
            self.delete(key)

    # -- helpers ----------------------------------------------------------------------------

    def _object(self, key: str) -> str:
        return self._root + validate_key(key)

    def _lost(self, key: str, why: str) -> KeyConflict:
        return KeyConflict(f"compare-and-swap on {key!r} in {self.describe()} lost: {why}")

    def _conditional(self, key: str, why: str, call: Callable[[], T]) -> T:
        """Run a conditional request; a failed condition becomes KeyConflict."""
        try:
            return call()
        except bce.ClientError as exc:
            code, status = _error_code(exc)
            if code in _PRECONDITION or status == 412:
                raise self._lost(key, why) from None
            if code == _CONDITIONAL_CONFLICT or status == 409:
                raise self._lost(key, "a concurrent conditional write is in progress") from None
            if code in _NOT_FOUND or status == 404:
                raise self._lost(key, "the key was deleted") from None
            if code == "NotImplemented" or status == 501:
                raise _Unsupported(
                    f"compare_and_swap {key!r} in {self.describe()}: the server does not "
                    "implement this conditional request"
                ) from None
            raise self._error(exc, "compare_and_swap", key) from None
        except bce.BotoCoreError as exc:
            raise self._error(exc, "compare_and_swap", key) from None

    def _read_with_etag(self, key: str) -> tuple[bytes | None, str | None]:
        """The current value and ETag of ``key``, or (None, None) if it is absent."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object(key))
            body = response["Body"]
            try:
                return bytes(body.read()), str(response["ETag"])
            finally:
                body.close()
        except bce.ClientError as exc:
            code, _ = _error_code(exc)
            if code in _NOT_FOUND:
                return None, None
            raise self._error(exc, "compare_and_swap", key) from None
        except bce.BotoCoreError as exc:
            raise self._error(exc, "compare_and_swap", key) from None

    def _exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except KeyNotFound:
            return False
        return True

    def _check_bucket(self) -> None:
        """Raise PermanentBackendError if the bucket is missing; checked once per backend."""
        if self._bucket_exists:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            code, status = _error_code(exc)
            if code in _NOT_FOUND or status == 404:
                raise self._no_bucket() from None
            raise self._error(exc, "stat", "/") from None
        self._bucket_exists = True

    def _no_bucket(self) -> PermanentBackendError:
        endpoint = getattr(getattr(self.client, "meta", None), "endpoint_url", None)
        where = f" at {endpoint}" if endpoint else ""
        return PermanentBackendError(f"S3 bucket {self.bucket!r} does not exist{where}")

    def _error(self, exc: Exception, op: str, key: str) -> BackendError:
        """Translate a botocore exception into a one-line backend error naming the key."""
        where = f"{op} {key!r} in {self.describe()}"
        if isinstance(exc, bce.ClientError):
            code, status = _error_code(exc)
            message = _one_line(exc.response.get("Error", {}).get("Message", "") or code)
            if code == "NoSuchBucket":
                return self._no_bucket()
            if code in _NOT_FOUND or status == 404:
                return KeyNotFound(f"key {key!r} not found in {self.describe()}")
            if code in _DENIED or status == 403:
                return PermanentBackendError(
                    f"{where}: access denied ({code or status}: {message}); "
                    "check the AWS credentials and the bucket's permissions"
                )
            if code in _TRANSIENT or status >= 500 or status == 429:
                return TransientBackendError(f"{where} failed: {code or status}: {message}")
            return PermanentBackendError(f"{where} failed: {code or status}: {message}")
        if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
            return PermanentBackendError(
                f"{where}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            )
        if isinstance(exc, bce.CredentialRetrievalError):
            return PermanentBackendError(f"{where}: cannot load AWS credentials: {exc}")
        if isinstance(exc, (bce.ConnectionError, bce.HTTPClientError)):
            return TransientBackendError(f"{where} failed: {_one_line(str(exc))}")
        return BackendError(f"{where} failed: {_one_line(str(exc))}")


def probe_conditional_writes(backend: S3Backend) -> bool:
    """Whether the server enforces the conditional requests compare-and-swap relies on.

    Writes a fresh ``probe/...`` key under the backend's prefix, then tries to overwrite it with
    ``If-None-Match: *`` and with a wrong ``If-Match``, and to delete it with a wrong
    ``If-Match``; all three must be refused with 412. Servers that ignore the headers would let
    two ref updates both win, so callers must not use such a server for refs. The probe key is
    deleted afterwards.
    """
    key = f"probe/conditional-writes-{secrets.token_hex(8)}"
    obj = backend._object(key)
    client, bucket = backend.client, backend.bucket
    wrong_etag = '"00000000000000000000000000000000"'

    def refused(call: Callable[..., Any], **kwargs: Any) -> bool:
        try:
            call(Bucket=bucket, Key=obj, **kwargs)
        except bce.ClientError as exc:
            code, status = _error_code(exc)
            if code in _PRECONDITION or status == 412:
                return True
            if code == "NotImplemented" or status == 501:
                return False
            raise backend._error(exc, "probe", key) from None
        except bce.BotoCoreError as exc:
            raise backend._error(exc, "probe", key) from None
        return False

    try:
        client.put_object(Bucket=bucket, Key=obj, Body=b"first", IfNoneMatch="*")
    except (bce.ClientError, bce.BotoCoreError) as exc:
        raise backend._error(exc, "probe", key) from None
    try:
        return (
            refused(client.put_object, Body=b"second", IfNoneMatch="*")
            and refused(client.put_object, Body=b"third", IfMatch=wrong_etag)
            and refused(client.delete_object, IfMatch=wrong_etag)
        )
    finally:
        with contextlib.suppress(BackendError):
            backend.delete(key)
