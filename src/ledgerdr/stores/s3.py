"""A `Store` on an S3 bucket, write-once by S3's own rules: conditional writes plus Object Lock.

- put-if-absent is `If-None-Match: *` on PutObject and on CompleteMultipartUpload (S3, 2024), so two
  writers racing for one key cannot both succeed; no head-then-put window.
- Every upload carries a SHA-256 checksum that S3 checks (Object Lock requires a checksum on upload), and
  our own lowercase-hex sha256 in `x-amz-meta-sha256`, because S3's checksum is base64 and, for multipart
  objects, a checksum of part checksums rather than of the bytes.
- Retries of throttling and 5xx live in botocore's retry configuration and in `RetryingStore`, never here.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from ..errors import (
    AccessDenied,
    ChecksumMismatch,
    ConfigError,
    ObjectExists,
    ObjectNotFound,
    RetentionViolation,
    StoreError,
    StoreUnavailable,
)
from .base import ObjectInfo, Store, StoreProperties, validate_key, validate_prefix
from .file import checked_range, checked_sha256, future_utc, is_valid_key
from .retrying import unwrap

MiB = 1024 * 1024
_MIN_PART = 5 * MiB  # S3's minimum size of every part but the last
_MAX_PARTS = 10_000
_MAX_COPY = 5 * 1024 * MiB  # CopyObject's limit; larger objects would need UploadPartCopy
_LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
_SSE_MODES = ("AES256", "aws:kms")
# botocore retries throttling/5xx itself; kept low because RetryingStore multiplies the attempts.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=60)

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}
_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
_DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId",
           "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AccountProblem"}
_TRANSIENT = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
              "RequestTimeout", "InternalError", "ServiceUnavailable", "OperationAborted"}
_BAD_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}
_IAM_ACTION = {"put": "s3:PutObject", "get": "s3:GetObject", "head": "s3:GetObject", "list": "s3:ListBucket",
               "delete": "s3:DeleteObjectVersion", "retention": "s3:PutObjectRetention",
               "head_bucket": "s3:ListBucket"}


def make_client(region: str | None = None, endpoint_url: str | None = None, role_arn: str | None = None) -> Any:
    """An S3 client; with `role_arn`, one whose credentials come from STS AssumeRole (cross-account) and
    are refreshed before they expire, so a restore that outlasts one session keeps working.

    Raises AccessDenied when the role cannot be assumed.
    """
    session = boto3.session.Session(region_name=region)
    if role_arn:
        session = _assumed_role_session(session, role_arn, region)
    return session.client("s3", region_name=region, endpoint_url=endpoint_url, config=_CLIENT_CONFIG)


def _assumed_role_session(base: boto3.session.Session, role_arn: str, region: str | None) -> boto3.session.Session:
    sts = base.client("sts", region_name=region)

    def fetch() -> dict[str, str]:
        try:
            creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="ledgerdr")["Credentials"]
        except ClientError as exc:
            raise AccessDenied(
                "sts", role_arn, "assume_role", _message(exc),
                hint=f"the caller needs sts:AssumeRole on {role_arn}, and the role's trust policy must name it",
            ) from exc
        return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"], "expiry_time": creds["Expiration"].isoformat()}

    core = botocore.session.get_session()
    # botocore has no public setter for refreshable credentials; this is the documented-by-practice way.
    core._credentials = RefreshableCredentials.create_from_metadata(
        metadata=fetch(), refresh_using=fetch, method="sts-assume-role"
    )
    return boto3.session.Session(botocore_session=core, region_name=region)


class S3Store:
    """Write-once objects in `bucket` (keys are bucket-relative; a location's prefix is the caller's).

    `lock_mode` is applied with `retain_until` on each put (None: no per-object lock, the bucket's default
    retention, if any, still applies). `sse` is "AES256" or "aws:kms" (with optional `kms_key_id`).
    Objects larger than `multipart_threshold` are uploaded in parts of that size (at least 5 MiB).
    """

    def __init__(
        self,
        bucket: str,
        *,
        client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        lock_mode: str | None = "COMPLIANCE",
        sse: str | None = None,
        kms_key_id: str | None = None,
        role_arn: str | None = None,
        multipart_threshold: int = 64 * MiB,
    ) -> None:
        self.lock_mode = None if lock_mode is None else lock_mode.upper()
        _check_settings(bucket, self.lock_mode, sse, kms_key_id, client, role_arn, multipart_threshold)
        self.bucket, self.region, self.sse, self.kms_key_id = bucket, region, sse, kms_key_id
        self.multipart_threshold = multipart_threshold
        self.part_size = max(multipart_threshold, _MIN_PART)
        self.client = client or make_client(region, endpoint_url, role_arn)
        self.url = f"s3://{bucket}"
        self.properties = StoreProperties(
            "s3", enforces_retention=self.lock_mode is not None, server_side_copy=True, has_versions=True,
            checksum_on_head=True, bucket=bucket,
        )
        self._bucket_seen = False
        # Source buckets whose server-side copy was refused (another account): asked once, then read through us.
        self._copy_refused: set[str] = set()

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r}, lock_mode={self.lock_mode!r}, sse={self.sse!r})"

    # --- Store protocol ----------------------------------------------------------------------------------

    def put(
        self, key: str, data: bytes, *, retain_until: datetime | None = None, sha256: str | None = None
    ) -> ObjectInfo:
        """Upload `data` if `key` is free; raises ObjectExists (nothing changes), ChecksumMismatch,
        AccessDenied, StoreUnavailable. The returned ObjectInfo carries the new VersionId."""
        validate_key(self.url, key)
        digest = checked_sha256(self.url, key, data, sha256)
        until = future_utc(self.url, key, retain_until)
        until = until if self.lock_mode else None  # without a lock mode S3 records no retention
        params = self._write_params(key, digest, until)
        if len(data) > self.multipart_threshold:
            version_id = self._put_multipart(key, data, params, until)
        else:
            with self._aws("put", key):
                resp = self.client.put_object(
                    Body=data, IfNoneMatch="*", ChecksumSHA256=_b64(hashlib.sha256(data).digest()), **params
                )
            version_id = resp.get("VersionId")
        return ObjectInfo(key, len(data), digest, until, version_id=version_id)

    def get(
        self, key: str, *, start: int | None = None, end: int | None = None, version_id: str | None = None
    ) -> bytes:
        """Bytes [start, end) of `key` (of `version_id` when given); raises ObjectNotFound, AccessDenied."""
        validate_key(self.url, key)
        lo, hi = checked_range(self.url, key, start, end)
        if hi is not None and hi <= lo:
            self.head(key, version_id=version_id)  # an empty range still needs the object to exist
            return b""
        params = {"Bucket": self.bucket, "Key": key, **_version(version_id)}
        if lo or hi is not None:
            params["Range"] = f"bytes={lo}-{'' if hi is None else hi - 1}"
        with self._aws("get", key):
            try:
                resp = self.client.get_object(**params)
            except ClientError as exc:
                if _code(exc) != "InvalidRange":
                    raise
                return b""  # start at or past the end: slice semantics, as on every backend
            data: bytes = resp["Body"].read()
            return data

    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo:
        """Size, recorded sha256, retain-until, VersionId and storage class; raises ObjectNotFound.

        HEAD answers a bare 404 for a missing bucket too, so the first miss checks the bucket once.
        """
        return _object_info(key, self._head(key, version_id))

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under `prefix` in UTF-8 byte order (S3's order). Only key, size and storage class are
        filled: sha256, retention and VersionId would cost one HEAD per object (use `head`)."""
        validate_prefix(self.url, prefix)
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        with self._aws("list", prefix):
            for page in pages:
                for obj in page.get("Contents", ()):  # a page of an empty listing has no Contents
                    if is_valid_key(self.url, obj["Key"]):
                        yield ObjectInfo(obj["Key"], obj["Size"], None, None,
                                         storage_class=obj.get("StorageClass"), stamp=_stamp(obj))

    def delete(self, key: str) -> None:
        """Remove the current version of `key` for good (not a delete marker, which would leave a locked
        object in place while hiding it). Raises ObjectNotFound, RetentionViolation when S3 refuses
        because of Object Lock or a legal hold, AccessDenied otherwise."""
        resp = self._head(key, None)
        version = resp.get("VersionId")
        params = {"Bucket": self.bucket, "Key": key, **_version(None if version == "null" else version)}
        with self._aws("delete", key):
            try:
                self.client.delete_object(**params)
            except ClientError as exc:
                if _code(exc) in _DENIED and _is_locked(resp):
                    raise RetentionViolation(
                        self.url, key, "delete", f"Object Lock {resp.get('ObjectLockMode')} until "
                        f"{resp.get('ObjectLockRetainUntilDate')}, legal hold {resp.get('ObjectLockLegalHoldStatus')}",
                        hint="write-once storage: the object can be removed only after its retention ends",
                    ) from exc
                raise

    def heal(self, key: str, data: bytes, *, sha256: str) -> ObjectInfo:
        """An S3 object is never rewritten in place (`heals_in_place` False): a new version would be bytes
        nobody recorded. Raises StoreError."""
        raise StoreError(self.url, key, "heal", "S3 does not heal objects in place: restore from a replica")

    def copy_from(
        self, source: Store, key: str, *, version_id: str | None, sha256: str, retain_until: datetime | None = None
    ) -> ObjectInfo | None:
        """Server-side copy of `key` (the version `version_id`) from `source`'s bucket to the same key here,
        put-if-absent, retained until the later of `retain_until` and the source version's own retention.

        Returns None, having written nothing, when S3 cannot vouch for the bytes (the source version's stored
        SHA-256 is absent, composite or not `sha256`; or it is over CopyObject's 5 GiB) or this store's
        credentials may not read `source` (another account): the caller then copies through get and put,
        which checks the bytes itself. Raises ObjectNotFound (no such key or version), ObjectExists,
        AccessDenied, StoreUnavailable.
        """
        validate_key(self.url, key)
        source = unwrap(source)
        if not isinstance(source, S3Store) or source.bucket in self._copy_refused:
            return None  # another kind of store: the caller copies through get and put
        with source._aws("head", key):
            head = source.client.head_object(Bucket=source.bucket, Key=key, ChecksumMode="ENABLED",
                                             **_version(version_id))
        stored = head.get("ChecksumSHA256")
        if (stored != _b64(bytes.fromhex(sha256)) or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT"
                or head["ContentLength"] > _MAX_COPY):
            return None
        until = future_utc(self.url, key, retain_until)
        source_until = _object_info(key, head).retain_until
        if source_until is not None and (until is None or source_until > until):
            until = source_until
        until = until if self.lock_mode else None
        params = self._write_params(key, sha256, until)
        copy_source = {"Bucket": source.bucket, "Key": key, **_version(version_id)}
        self.client.meta.events.register("before-call.s3.CopyObject", _empty_body_md5,
                                         unique_id="ledgerdr-copy-empty-body-md5")
        try:
            resp = self.client.copy_object(CopySource=copy_source, IfNoneMatch="*", MetadataDirective="REPLACE",
                                           **params)
        except ClientError as exc:
            if _code(exc) in _DENIED | {"NoSuchBucket"}:
                # The source is out of these credentials' reach; if the destination is the problem, the
                # put that follows names it.
                self._copy_refused.add(source.bucket)
                return None
            raise self._error(exc, "put", key) from exc
        except (BotoConnectionError, HTTPClientError, IncompleteReadError) as exc:
            raise StoreUnavailable(self.url, key, "put", str(exc), hint="S3 is unreachable; retried later") from exc
        return ObjectInfo(key, head["ContentLength"], sha256, until, version_id=resp.get("VersionId"))

    # --- writing -----------------------------------------------------------------------------------------

    def _write_params(self, key: str, digest: str, until: datetime | None) -> dict[str, Any]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ChecksumAlgorithm": "SHA256",
                                  "Metadata": {"sha256": digest}}
        if until is not None:
            params.update(ObjectLockMode=self.lock_mode, ObjectLockRetainUntilDate=until)
        if self.sse:
            params["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            params["SSEKMSKeyId"] = self.kms_key_id
        return params

    def _put_multipart(self, key: str, data: bytes, params: dict[str, Any], until: datetime | None) -> str | None:
        if self.exists(key):  # fail before uploading the parts; If-None-Match below is what makes it safe
            raise ObjectExists(self.url, key, "put", hint="write-once storage never overwrites; use a new key")
        with self._aws("put", key):
            upload_id = self.client.create_multipart_upload(**params)["UploadId"]
        try:
            parts = [self._upload_part(key, upload_id, number, data[offset: offset + self._part_size(data)])
                     for number, offset in enumerate(range(0, len(data), self._part_size(data)), start=1)]
            with self._aws("put", key):
                resp = self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, IfNoneMatch="*",
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            self._abort(key, upload_id)
            raise
        version_id: str | None = resp.get("VersionId")
        if until is not None:
            self._ensure_retention(key, version_id, until)
        return version_id

    def _part_size(self, data: bytes) -> int:
        return max(self.part_size, -(-len(data) // _MAX_PARTS))

    def _upload_part(self, key: str, upload_id: str, number: int, chunk: bytes) -> dict[str, Any]:
        checksum = _b64(hashlib.sha256(chunk).digest())
        with self._aws("put", key):
            resp = self.client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk,
                ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum,
            )
        return {"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": resp.get("ChecksumSHA256", checksum)}

    def _abort(self, key: str, upload_id: str) -> None:
        """Best effort: a failed abort leaves parts that a bucket lifecycle rule should expire."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception:  # the upload's own error is the one to report
            pass

    def _ensure_retention(self, key: str, version_id: str | None, until: datetime) -> None:
        """S3 applies lock headers given to CreateMultipartUpload; moto and some S3-compatible servers
        drop them. Check the stored retention and set it explicitly when missing or shorter."""
        stored = _object_info(key, self._head(key, version_id)).retain_until
        if stored is None or stored < until.replace(microsecond=0):
            with self._aws("retention", key):
                self.client.put_object_retention(
                    Bucket=self.bucket, Key=key, **_version(version_id),
                    Retention={"Mode": self.lock_mode, "RetainUntilDate": until},
                )

    # --- reading -----------------------------------------------------------------------------------------

    def _head(self, key: str, version_id: str | None) -> dict[str, Any]:
        validate_key(self.url, key)
        try:
            with self._aws("head", key):
                head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED",
                                                               **_version(version_id))
                return head
        except ObjectNotFound:
            if not self._bucket_seen:
                self._check_bucket()
            raise

    def _check_bucket(self) -> None:
        try:
            with self._aws("head_bucket", ""):
                self.client.head_bucket(Bucket=self.bucket)
        except ObjectNotFound as exc:  # head_bucket's bare 404
            raise self._no_bucket("head_bucket") from exc
        self._bucket_seen = True

    # --- errors ------------------------------------------------------------------------------------------

    @contextmanager
    def _aws(self, op: str, key: str) -> Iterator[None]:
        """Translate botocore errors into the StoreError family, keeping the address (store, key, op)."""
        try:
            yield
        except ClientError as exc:
            raise self._error(exc, op, key) from exc
        except (BotoConnectionError, HTTPClientError, IncompleteReadError) as exc:
            raise StoreUnavailable(self.url, key, op, str(exc), hint="S3 is unreachable; retried later") from exc
        except NoCredentialsError as exc:
            raise AccessDenied(self.url, key, op, str(exc), hint="configure AWS credentials") from exc

    def _error(self, exc: ClientError, op: str, key: str) -> StoreError:
        code, message = _code(exc), _message(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "NoSuchBucket":
            return self._no_bucket(op)
        if code in _NOT_FOUND:
            return ObjectNotFound(self.url, key, op, message)
        if code in _EXISTS:
            return ObjectExists(self.url, key, op, message, hint="write-once storage never overwrites; use a new key")
        if code in _DENIED:
            return AccessDenied(self.url, key, op, f"{code}: {message}", hint=self._denied_hint(op, key))
        if code in _BAD_DIGEST:
            return ChecksumMismatch(self.url, key, op, message, hint="the bytes were damaged in transit; retry")
        if code in _TRANSIENT or status == 429 or status >= 500:
            return StoreUnavailable(self.url, key, op, f"{code}: {message}")
        if code == "InvalidRequest" and "lock" in message.lower():
            return StoreError(self.url, key, op, message, hint=f"enable Object Lock on bucket {self.bucket!r} "
                              "(only possible with versioning) or open the store with lock_mode=None")
        return StoreError(self.url, key, op, f"{code}: {message}")

    def _denied_hint(self, op: str, key: str) -> str:
        resource = f"arn:aws:s3:::{self.bucket}" + (f"/{key}" if op != "list" and key else "")
        hint = f"the credentials in use need {_IAM_ACTION.get(op, 's3:*')} on {resource}"
        if op in ("get", "head"):
            hint += " (S3 also answers 403 for a missing key when s3:ListBucket is not granted)"
        return hint

    def _no_bucket(self, op: str) -> StoreError:
        where = f" in region {self.region}" if self.region else ""
        return StoreError(self.url, "", op, f"bucket {self.bucket!r} does not exist{where}",
                          hint="create it with Object Lock enabled, or correct the location's bucket and region")


def _empty_body_md5(params: dict[str, Any], **_: Any) -> None:
    """A write that sets Object Lock retention, or lands in a bucket with default retention, must carry an
    integrity header (moto enforces it on CopyObject too, and refuses the copy without one). CopyObject
    sends no body, so the MD5 of the empty body is a true Content-MD5 for it."""
    params["headers"].setdefault("Content-MD5", _b64(hashlib.md5(b"").digest()))


def _check_settings(bucket: str, lock_mode: str | None, sse: str | None, kms_key_id: str | None,
                    client: Any, role_arn: str | None, threshold: int) -> None:
    problems = []
    if not bucket or "/" in bucket:
        problems.append(f"bucket {bucket!r} is not a bucket name")
    if lock_mode is not None and lock_mode not in _LOCK_MODES:
        problems.append(f"lock_mode {lock_mode!r} is not one of {', '.join(_LOCK_MODES)} or None")
    if sse is not None and sse not in _SSE_MODES:
        problems.append(f"sse {sse!r} is not one of {', '.join(_SSE_MODES)} or None")
    if kms_key_id and sse != "aws:kms":
        problems.append("kms_key_id needs sse='aws:kms'")
    if client is not None and role_arn:
        problems.append("give either client or role_arn, not both")
    if threshold < 1:
        problems.append(f"multipart_threshold {threshold} must be positive")
    if problems:
        raise ConfigError("s3 store: " + "; ".join(problems))


def _object_info(key: str, resp: dict[str, Any]) -> ObjectInfo:
    recorded = resp.get("Metadata", {}).get("sha256")
    until = resp.get("ObjectLockRetainUntilDate")
    return ObjectInfo(
        key=key,
        size=resp["ContentLength"],
        sha256=recorded if _is_hex_sha256(recorded) else None,
        retain_until=until.astimezone(UTC) if until else None,
        version_id=resp.get("VersionId"),
        storage_class=resp.get("StorageClass", "STANDARD"),
        stamp=_stamp(resp),
        content_sha256=_full_object_sha256(resp),
    )


def _full_object_sha256(resp: dict[str, Any]) -> str | None:
    """S3's checksum of the whole object, hex; None for a multipart object's composite checksum (a checksum of
    the parts' checksums, not of the bytes) or an object stored without one."""
    stored = resp.get("ChecksumSHA256")
    if not stored or resp.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT" or "-" in stored:
        return None
    return base64.b64decode(stored).hex()


def _stamp(obj: dict[str, Any]) -> str | None:
    """ETag with LastModified: a new version put over the key changes LastModified even with the same bytes,
    and the ETag even within the same second (it is the MD5, or unique per write under SSE-KMS)."""
    etag, modified = obj.get("ETag"), obj.get("LastModified")
    return f"{etag}@{modified.isoformat()}" if etag and modified else None


def _is_locked(resp: dict[str, Any]) -> bool:
    until = resp.get("ObjectLockRetainUntilDate")
    return resp.get("ObjectLockLegalHoldStatus") == "ON" or bool(until and until > datetime.now(UTC))


def _is_hex_sha256(value: str | None) -> bool:
    return value is not None and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _version(version_id: str | None) -> dict[str, str]:
    return {"VersionId": version_id} if version_id else {}


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


# --- preflight: is this bucket fit to hold a ledger's disaster-recovery copy? ----------------------------


@dataclass(frozen=True)
class Finding:
    level: str  # "ok" | "warn" | "error"
    check: str
    message: str


class _Unreadable(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


_MISSING_CONFIG = {"ObjectLockConfigurationNotFoundError", "ServerSideEncryptionConfigurationNotFoundError",
                   "ReplicationConfigurationNotFoundError"}
_CONFIG_ACTION = {"get_bucket_versioning": "s3:GetBucketVersioning",
                  "get_object_lock_configuration": "s3:GetBucketObjectLockConfiguration",
                  "get_bucket_encryption": "s3:GetEncryptionConfiguration",
                  "get_bucket_replication": "s3:GetReplicationConfiguration"}


def preflight(store: Store) -> list[Finding]:
    """Check the bucket behind an S3 store (wrappers are looked through): reachable, versioning, Object
    Lock, default retention, default encryption, replication. Never raises for what it finds; an
    unreadable setting is a 'warn' naming the missing permission."""
    s3 = _s3_of(store)
    bucket = _check_reachable(s3)
    if bucket.level == "error":
        return [bucket]
    findings = [bucket]
    for check in (_check_versioning, _check_object_lock, _check_encryption, _check_replication):
        try:
            findings.extend(check(s3))
        except _Unreadable as unreadable:
            findings.append(unreadable.finding)
    return findings


def object_lock_required(store: Store, repository: str, findings: list[Finding] | None = None) -> Finding:
    """A repository's `require_object_lock`, checked: 'error' naming the repository and the bucket unless
    `preflight` finds Object Lock enabled. `findings` reuses a preflight already run; never raises for what
    it finds."""
    s3 = _s3_of(store)
    findings = preflight(store) if findings is None else findings
    lock = next((f for f in findings if f.check == "object_lock"), None)
    if lock is not None and lock.level == "ok":
        return Finding("ok", "object_lock", f"repository {repository} requires Object Lock; bucket {s3.bucket!r} "
                       "has it")
    why = lock.message if lock else "; ".join(f.message for f in findings if f.level != "ok")
    return Finding("error", "object_lock", f"repository {repository} requires Object Lock, and bucket "
                   f"{s3.bucket!r} does not provide it: {why}")


def check_retention(store: Store, retention_days: int) -> Finding:
    """'error' when `retention_days` is shorter than the bucket's default Object Lock period: S3 would lock
    objects longer than ledgerdr plans to keep them, so planned removals would fail (DESIGN: refused)."""
    s3 = _s3_of(store)
    try:
        config = _bucket_config(s3, "retention", "get_object_lock_configuration")
    except _Unreadable as unreadable:
        return unreadable.finding
    mode, days = _default_retention(config)
    if days is None:
        return Finding("ok", "retention", "the bucket sets no default lock period")
    if retention_days < days:
        return Finding("error", "retention", f"retention of {retention_days} days is shorter than bucket "
                       f"{s3.bucket!r}'s default {mode} lock of {days} days; set retention to at least {days} days")
    return Finding("ok", "retention", f"retention of {retention_days} days covers the {mode} lock of {days} days")


def _s3_of(store: Store) -> S3Store:
    store = unwrap(store)
    if not isinstance(store, S3Store):
        raise ConfigError(f"preflight checks S3 buckets; {store.url} is not one")
    return store


def _bucket_config(s3: S3Store, check: str, method: str) -> dict[str, Any] | None:
    """A bucket-level setting; None when the bucket has none; raises _Unreadable otherwise."""
    try:
        config: dict[str, Any] = getattr(s3.client, method)(Bucket=s3.bucket)
        return config
    except ClientError as exc:
        if _code(exc) in _MISSING_CONFIG:
            return None
        raise _Unreadable(Finding("warn", check, f"cannot read ({_code(exc)}: {_message(exc)}); "
                                  f"grant {_CONFIG_ACTION[method]} to check it")) from exc


def _check_reachable(s3: S3Store) -> Finding:
    try:
        with s3._aws("head_bucket", ""):
            resp = s3.client.head_bucket(Bucket=s3.bucket)
    except ObjectNotFound:
        return Finding("error", "bucket", str(s3._no_bucket("head_bucket")))
    except StoreError as exc:
        return Finding("error", "bucket", str(exc))
    region = resp.get("BucketRegion") or resp["ResponseMetadata"].get("HTTPHeaders", {}).get("x-amz-bucket-region")
    if s3.region and region and region != s3.region:
        return Finding("warn", "bucket", f"bucket {s3.bucket!r} is in {region}, the store is set for {s3.region}")
    return Finding("ok", "bucket", f"bucket {s3.bucket!r} is reachable" + (f" in {region}" if region else ""))


def _check_versioning(s3: S3Store) -> list[Finding]:
    status = (_bucket_config(s3, "versioning", "get_bucket_versioning") or {}).get("Status", "never enabled")
    if status == "Enabled":
        return [Finding("ok", "versioning", "versioning is enabled")]
    return [Finding("error" if s3.lock_mode else "warn", "versioning",
                    f"versioning is {status.lower()}: objects carry no version id and Object Lock is impossible")]


def _check_object_lock(s3: S3Store) -> list[Finding]:
    config = _bucket_config(s3, "object_lock", "get_object_lock_configuration")
    if not config or config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
        level = "error" if s3.lock_mode else "warn"
        return [Finding(level, "object_lock", "Object Lock is not enabled: objects are protected only by "
                        "put-if-absent" + (f", and puts with {s3.lock_mode} retention will fail" if s3.lock_mode else ""))]
    findings = [Finding("ok", "object_lock", "Object Lock is enabled")]
    mode, days = _default_retention(config)
    if days is None:
        level = "ok" if s3.lock_mode else "warn"
        findings.append(Finding(level, "default_retention", "no default retention; " + (
            f"ledgerdr sets {s3.lock_mode} retention on each object" if s3.lock_mode
            else "with lock_mode None nothing protects objects from deletion")))
    elif mode == "GOVERNANCE":
        findings.append(Finding("warn", "default_retention", f"default retention GOVERNANCE {days} days can be "
                                "bypassed by principals with s3:BypassGovernanceRetention"))
    else:
        findings.append(Finding("ok", "default_retention", f"default retention {mode} {days} days"))
    return findings


def _default_retention(config: dict[str, Any] | None) -> tuple[str | None, int | None]:
    """(mode, days) of the bucket's default retention; a year counts 365 days, as S3 documents."""
    rule = ((config or {}).get("ObjectLockConfiguration", {}).get("Rule") or {}).get("DefaultRetention")
    if not rule:
        return None, None
    return rule.get("Mode"), int(rule.get("Days") or 0) + 365 * int(rule.get("Years") or 0)


def _check_encryption(s3: S3Store) -> list[Finding]:
    config = _bucket_config(s3, "encryption", "get_bucket_encryption")
    rules = (config or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    defaults = [r["ApplyServerSideEncryptionByDefault"] for r in rules if "ApplyServerSideEncryptionByDefault" in r]
    if defaults:
        algorithms = ", ".join(d["SSEAlgorithm"] + (f" ({d['KMSMasterKeyID']})" if d.get("KMSMasterKeyID") else "")
                               for d in defaults)
        return [Finding("ok", "encryption", f"default encryption {algorithms}")]
    if s3.sse:
        return [Finding("ok", "encryption", f"no default encryption; ledgerdr requests {s3.sse} on each object")]
    return [Finding("warn", "encryption", "no default encryption configured and the store requests none")]


def _check_replication(s3: S3Store) -> list[Finding]:
    config = _bucket_config(s3, "replication", "get_bucket_replication")
    rules = (config or {}).get("ReplicationConfiguration", {}).get("Rules", [])
    if not rules:
        return [Finding("ok", "replication", "no replication configuration (copies come from ledgerdr replicate)")]
    targets = sorted({r.get("Destination", {}).get("Bucket", "?") for r in rules})
    return [Finding("ok", "replication", f"{len(rules)} replication rule(s) to {', '.join(targets)}")]
