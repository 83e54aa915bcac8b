"""The object store: one interface over a local folder and an S3 bucket.

Landing files, the archive and error prefixes, and the lake all live in an object store. Locally
it is a folder on disk (the embedded default); in prod it is S3 or any S3-compatible endpoint.
Keys are always '/'-separated and relative to the store's location, so callers never care which
one they hold.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_aws.s3.sensor import get_objects
from pydantic import Field

from sales_platform.faults import fault


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    # An opaque version tag: S3's ETag, or size+mtime for a local file. It changes whenever
    # the content under a key is replaced.
    etag: str
    last_modified: datetime


class ObjectStore(Protocol):
    def uri(self, key: str = "") -> str: ...
    def list(self, prefix: str) -> Iterator[StoredObject]: ...
    def list_since(self, prefix: str, since: datetime | None) -> list[StoredObject]:
        """Objects under prefix modified strictly after `since`, oldest first."""
        ...

    def head(self, key: str) -> StoredObject | None: ...
    def get_bytes(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def put_file(self, local_path: Path, key: str) -> None:
        """Store a local file under key. The local file may be consumed (moved)."""
        ...

    def download(self, key: str, local_path: Path) -> None: ...
    def copy(self, src_key: str, dst_key: str) -> None: ...
    def move(
        self,
        src_key: str,
        dst_key: str,
        if_etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> bool:
        """Move src to dst; with if_etag, only while src still holds that version.

        Returns False (and moves nothing) when src is gone or holds another version. When src
        is replaced between the copy and the delete, the copy stands and the new src is kept
        (True): nothing is ever deleted that was not copied. `metadata` (ASCII) is stored on
        dst where the store keeps object metadata.
        """
        ...

    def metadata(self, key: str) -> dict[str, str]:
        """The user metadata stored with an object ({} where the store keeps none)."""
        ...

    def delete(self, keys: Iterable[str]) -> None: ...
    def local_path(self, key: str) -> Path | None:
        """The file behind key when the store is on this disk (no staging needed), else None."""
        ...


def _join(prefix: str, key: str) -> str:
    if not prefix:
        return key
    return f"{prefix.rstrip('/')}/{key}" if key else prefix.rstrip("/") + "/"


class LocalObjectStore:
    """A folder on disk that behaves like a bucket: writes are atomic renames."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise ValueError(f"key escapes the store: {key!r}")
        return path

    def uri(self, key: str = "") -> str:
        return str(self._path(key)) if key else str(self.root)

    def _stat(self, path: Path) -> StoredObject:
        st = path.stat()
        return StoredObject(
            key=path.relative_to(self.root).as_posix(),
            size=st.st_size,
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def list(self, prefix: str) -> Iterator[StoredObject]:
        # Walk only the deepest folder the prefix names, then filter like S3's prefix match.
        folder = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        if not folder.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath, name)
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix) and ".tmp-" not in name:
                    yield self._stat(path)

    def list_since(self, prefix: str, since: datetime | None) -> list[StoredObject]:
        found = [o for o in self.list(prefix) if since is None or o.last_modified > since]
        return sorted(found, key=lambda o: o.last_modified)

    def head(self, key: str) -> StoredObject | None:
        path = self._path(key)
        return self._stat(path) if path.is_file() else None

    def get_bytes(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        with self._path(key).open("rb") as f:
            if byte_range is None:
                return f.read()
            start, end = byte_range
            f.seek(start)
            return f.read(end - start + 1)

    def _atomic_target(self, key: str) -> tuple[Path, Path]:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target, target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex}")

    def put_bytes(self, key: str, data: bytes) -> None:
        target, tmp = self._atomic_target(key)
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def put_file(self, local_path: Path, key: str) -> None:
        target, tmp = self._atomic_target(key)
        # A rename when staging shares the disk; a copy across file systems.
        shutil.move(str(local_path), tmp)
        os.replace(tmp, target)

    def download(self, key: str, local_path: Path) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(key), local_path)

    def copy(self, src_key: str, dst_key: str) -> None:
        target, tmp = self._atomic_target(dst_key)
        shutil.copyfile(self._path(src_key), tmp)
        os.replace(tmp, target)

    def move(
        self,
        src_key: str,
        dst_key: str,
        if_etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> bool:
        # A rename keeps the mtime, hence the size+mtime tag: the identity needs no metadata.
        current = self.head(src_key)
        if current is None or (if_etag is not None and current.etag != if_etag):
            return False
        target = self._path(dst_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path(src_key), target)
        return True

    def metadata(self, key: str) -> dict[str, str]:
        return {}

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)


class S3ObjectStore:
    """A bucket (and optional key prefix) reached through boto3."""

    def __init__(
        self,
        client,
        bucket: str,
        prefix: str = "",
        sse: str | None = "AES256",
        sse_kms_key_id: str | None = None,
    ):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._put_args: dict[str, str] = {}
        if sse:
            self._put_args["ServerSideEncryption"] = sse
        if sse_kms_key_id:
            self._put_args["SSEKMSKeyId"] = sse_kms_key_id

    def _key(self, key: str) -> str:
        return _join(self.prefix, key)

    def _rel(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _object(self, full_key: str, size: int, etag: str, last_modified: datetime):
        return StoredObject(self._rel(full_key), size, etag.strip('"'), last_modified)

    def list(self, prefix: str) -> Iterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for obj in page.get("Contents", []):
                yield self._object(obj["Key"], obj["Size"], obj["ETag"], obj["LastModified"])

    def list_since(self, prefix: str, since: datetime | None) -> list[StoredObject]:
        # dagster-aws's listing: paginated, sorted by LastModified, strictly newer than `since`.
        objects = get_objects(
            self.bucket, self._key(prefix), since_last_modified=since, client=self.client
        )
        return [self._object(o["Key"], o["Size"], o["ETag"], o["LastModified"]) for o in objects]

    def head(self, key: str) -> StoredObject | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return self._object(
            self._key(key), resp["ContentLength"], resp["ETag"], resp["LastModified"]
        )

    def get_bytes(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        args = {"Bucket": self.bucket, "Key": self._key(key)}
        if byte_range is not None:
            args["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        return self.client.get_object(**args)["Body"].read()

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **self._put_args)

    def put_file(self, local_path: Path, key: str) -> None:
        self.client.upload_file(
            str(local_path), self.bucket, self._key(key), ExtraArgs=self._put_args or None
        )

    def download(self, key: str, local_path: Path) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, self._key(key), str(local_path))

    def copy(self, src_key: str, dst_key: str) -> None:
        self.client.copy(
            {"Bucket": self.bucket, "Key": self._key(src_key)},
            self.bucket,
            self._key(dst_key),
            ExtraArgs=self._put_args or None,
        )

    def move(
        self,
        src_key: str,
        dst_key: str,
        if_etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> bool:
        source = {"Bucket": self.bucket, "Key": self._key(src_key)}
        extra: dict = dict(self._put_args)
        if metadata:
            # The copy may get a new ETag (multipart above 8 MB, SSE-KMS): the metadata carries
            # the landing identity across.
            extra["Metadata"] = metadata
            extra["MetadataDirective"] = "REPLACE"
        if if_etag is not None:
            # S3 checks the version itself: a re-upload after our read is never archived.
            extra["CopySourceIfMatch"] = f'"{if_etag}"'
        try:
            # The managed copy: multipart above 5 GB, where copy_object would refuse.
            self.client.copy(source, self.bucket, self._key(dst_key), ExtraArgs=extra or None)
        except self.client.exceptions.ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                return False
            raise
        fault("archive.copied")
        delete = {"Bucket": self.bucket, "Key": self._key(src_key)}
        if if_etag is not None:
            # Conditional delete (S3 and moto honour If-Match on DeleteObject): a re-upload
            # that landed after the copy is not the version copied, so it stays for the next run.
            delete["IfMatch"] = f'"{if_etag}"'
        try:
            self.client.delete_object(**delete)
        except self.client.exceptions.ClientError as exc:
            if _code(exc) not in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                raise
        return True

    def metadata(self, key: str) -> dict[str, str]:
        resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        return dict(resp.get("Metadata") or {})

    def delete(self, keys: Iterable[str]) -> None:
        batch: list[dict[str, str]] = []
        for key in keys:
            batch.append({"Key": self._key(key)})
            if len(batch) == 1000:  # the DeleteObjects limit
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, batch: list[dict[str, str]]) -> None:
        resp = self.client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
        )
        if resp.get("Errors"):
            first = resp["Errors"][0]
            raise RuntimeError(
                f"S3 refused to delete {len(resp['Errors'])} object(s), first "
                f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
            )

    def local_path(self, key: str) -> Path | None:
        return None


# botocore's `max_attempts` in its `standard` retry mode: an S3 call that meets throttling
# (SlowDown, 503), a 5xx or a dropped connection is retried up to 5 times after the first attempt,
# with exponential backoff and jitter (at most 1, 2, 4, 8, 16 s: about 16 s in all, measured).
S3_MAX_ATTEMPTS = 5
_TARGET = "sales_platform.s3_target"


def s3_client(
    endpoint_url: str | None, region_name: str | None, max_attempts: int = S3_MAX_ATTEMPTS
):
    """A boto3 S3 client (dagster-aws's, `standard` retry mode) whose errors name the object."""
    client = S3Resource(
        endpoint_url=endpoint_url, region_name=region_name, max_attempts=max_attempts
    ).get_client()
    client.meta.events.register("before-parameter-build.s3", _remember_target)
    client.meta.events.register("after-call.s3", _name_target)
    return client


def _remember_target(params: dict, context: dict, **_) -> None:
    bucket = params.get("Bucket")
    if not bucket:
        return
    target = f"s3://{bucket}/{params.get('Key', params.get('Prefix', ''))}"
    if source := params.get("CopySource"):
        # A dict, or already botocore's 'bucket/key' text.
        source = (
            f"{source.get('Bucket')}/{source.get('Key')}" if isinstance(source, dict) else source
        )
        target = f"s3://{source} to {target}"
    if objects := (params.get("Delete") or {}).get("Objects"):
        target = f"{len(objects)} object(s) from s3://{bucket}/{objects[0].get('Key')}"
    context[_TARGET] = target


def _name_target(http_response, parsed: dict, context: dict, **_) -> None:
    # botocore's message names the operation and the retries; this adds the object, once the
    # retries are over (after-call comes after the last attempt).
    error, target = parsed.get("Error"), context.get(_TARGET)
    if http_response.status_code >= 300 and isinstance(error, dict) and target:
        error["Message"] = f"{error.get('Message') or ''} ({target})"


def _code(exc) -> str | None:
    return exc.response.get("Error", {}).get("Code")


def is_remote(location: str) -> bool:
    return urlparse(location).scheme in ("s3", "s3a")


class ObjectStoreResource(dg.ConfigurableResource):
    """Where objects live: `s3://bucket[/prefix]` or a local folder."""

    location: str = Field(description="s3://bucket[/prefix] (s3a:// accepted) or a local path")
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto); unset means AWS"
    )
    region_name: str | None = Field(default=None)
    server_side_encryption: str | None = Field(
        default="AES256", description="SSE on every put: AES256, aws:kms, or null for none"
    )
    sse_kms_key_id: str | None = Field(default=None)
    max_attempts: int = Field(
        default=S3_MAX_ATTEMPTS,
        description="botocore's max_attempts: retries of an S3 call after its first attempt",
    )

    def open(self) -> ObjectStore:
        parsed = urlparse(self.location)
        if parsed.scheme in ("s3", "s3a"):
            client = s3_client(self.endpoint_url, self.region_name, self.max_attempts)
            return S3ObjectStore(
                client,
                parsed.netloc,
                parsed.path,
                sse=self.server_side_encryption,
                sse_kms_key_id=self.sse_kms_key_id,
            )
        return LocalObjectStore(self.location)


def staging_dir(hint: Path | None = None) -> Path:
    """A fresh folder for staging files between an object store and local Spark.

    On the same disk as a local store (hint), so moving a staged file in is a rename.
    """
    base = hint if hint is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="sales-platform-stage-", dir=base))
