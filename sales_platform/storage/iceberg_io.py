"""pyiceberg's FileIO for the lake: pyarrow for reads, boto3 for writes to S3.

Iceberg metadata (table metadata, manifest lists, manifests) must be encrypted at rest like every
other object the platform puts (SSE-S3, or SSE-KMS with the business's key); pyarrow's S3
filesystem cannot ask for that, so writes to S3 go through boto3 with the same settings as the
object store. pyiceberg instantiates this class from the catalog's `py-io-impl` property.

Both retry throttling and 5xx with backoff: the boto3 client is the object store's (`standard`
mode, `max_attempts` of the store), pyarrow's filesystem gets `ReadRetries` through the
`s3.retry-strategy-impl` property.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from urllib.parse import urlparse

import pyarrow as pa
from botocore.exceptions import ClientError
from pyarrow.fs import AwsStandardS3RetryStrategy
from pyiceberg.io import InputFile, InputStream, OutputFile, OutputStream
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.typedef import EMPTY_DICT, Properties

from sales_platform.storage.object_store import S3_MAX_ATTEMPTS, s3_client

SSE = "sales-platform.s3.sse"
SSE_KMS_KEY_ID = "sales-platform.s3.sse-kms-key-id"
MAX_ATTEMPTS = "sales-platform.s3.max-attempts"


class ReadRetries(AwsStandardS3RetryStrategy):
    """The AWS SDK's standard retries (throttling, 5xx, with backoff) for pyarrow's reads.

    pyiceberg makes it without arguments, so it keeps the platform's default attempt count.
    """

    def __init__(self):
        super().__init__(max_attempts=S3_MAX_ATTEMPTS)


class LakeFileIO(PyArrowFileIO):
    def __init__(self, properties: Properties = EMPTY_DICT):
        super().__init__(properties)
        self._client = None

    def client(self):
        if self._client is None:
            self._client = s3_client(
                self.properties.get("s3.endpoint"),
                self.properties.get("s3.region"),
                int(self.properties.get(MAX_ATTEMPTS, S3_MAX_ATTEMPTS)),
            )
        return self._client

    def new_input(self, location: str) -> InputFile:
        return _NamedInput(super().new_input(location))

    def new_output(self, location: str) -> OutputFile:
        if urlparse(location).scheme in ("s3", "s3a"):
            return _S3OutputFile(location, self)
        return super().new_output(location)


class _Upload(io.BytesIO):
    def __init__(self, target: _S3OutputFile):
        super().__init__()
        self._target = target

    def close(self) -> None:
        if not self.closed:
            self._target.put(self.getvalue())
        super().close()


class _S3OutputFile(OutputFile):
    def __init__(self, location: str, file_io: LakeFileIO):
        super().__init__(location)
        parsed = urlparse(location)
        self._bucket, self._key = parsed.netloc, parsed.path.lstrip("/")
        self._io = file_io

    def _head(self) -> dict | None:
        try:
            return self._io.client().head_object(Bucket=self._bucket, Key=self._key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def __len__(self) -> int:
        head = self._head()
        if head is None:
            raise FileNotFoundError(self.location)
        return head["ContentLength"]

    def exists(self) -> bool:
        return self._head() is not None

    def to_input_file(self) -> InputFile:
        return self._io.new_input(self.location)

    def create(self, overwrite: bool = False) -> OutputStream:
        if not overwrite and self.exists():
            raise FileExistsError(self.location)
        return _Upload(self)

    def put(self, data: bytes) -> None:
        extra = {}
        sse = self._io.properties.get(SSE)
        if sse:
            extra["ServerSideEncryption"] = sse
            if sse == "aws:kms" and self._io.properties.get(SSE_KMS_KEY_ID):
                extra["SSEKMSKeyId"] = self._io.properties[SSE_KMS_KEY_ID]
        self._io.client().put_object(Bucket=self._bucket, Key=self._key, Body=data, **extra)


@contextlib.contextmanager
def _naming(location: str) -> Iterator[None]:
    """pyarrow's S3 errors name the operation, not the object: add it (once the retries are
    over). Its subclasses (FileNotFoundError, PermissionError) are pyiceberg's to handle."""
    try:
        yield
    except OSError as exc:
        if type(exc) is not OSError or location in str(exc):
            raise
        raise OSError(f"{exc} ({location})") from exc


class _NamedInput(InputFile):
    """pyarrow's input file, whose errors name it."""

    def __init__(self, inner: InputFile):
        super().__init__(inner.location)
        self._inner = inner

    def __len__(self) -> int:
        with _naming(self.location):
            return len(self._inner)

    def exists(self) -> bool:
        with _naming(self.location):
            return self._inner.exists()

    def open(self, seekable: bool = True) -> InputStream:
        with _naming(self.location):
            stream = self._inner.open(seekable=seekable)
        # Still a pyarrow file (pyiceberg hands it to pyarrow's Parquet reader), whose reads
        # name the object when they fail.
        return pa.PythonFile(_NamedStream(stream, self.location), mode="r")


class _NamedStream(io.RawIOBase):
    def __init__(self, inner: InputStream, location: str):
        super().__init__()
        self._inner, self._location = inner, location

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with _naming(self._location):
            return self._inner.read() if size is None or size < 0 else self._inner.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with _naming(self._location):
            return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def close(self) -> None:
        self._inner.close()
        super().close()
