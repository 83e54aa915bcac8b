"""A fault-injecting S3 endpoint: moto's server behind a WSGI layer that answers chosen calls
with throttling (503 SlowDown) or a server error (500 InternalError), as S3 does under load.

It serves the same moto state as the session's `s3_endpoint` (moto's backends live in the
process), so a bucket made there is here too. Every client that reaches S3 over HTTP goes through
it, whatever made it: boto3 (the object store, s3transfer's uploads and copies, the Iceberg
writes) and pyarrow's S3 filesystem (pyiceberg's reads of the Iceberg metadata).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

ERRORS = {
    503: ("503 Slow Down", "SlowDown", "Please reduce your request rate."),
    500: ("500 Internal Server Error", "InternalError", "We encountered an internal error."),
}
FOREVER = 10**9


def operation(environ: dict) -> tuple[str, str]:
    """The S3 operation of a path-style request, and its object key ('' for a bucket call)."""
    method = environ["REQUEST_METHOD"]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    _, _, key = unquote(environ.get("PATH_INFO", "")).lstrip("/").partition("/")
    if not key:
        if method == "GET":
            return ("ListObjectsV2" if "list-type" in query else "ListObjects"), ""
        if method == "POST" and "delete" in query:
            return "DeleteObjects", ""
        return f"{method} bucket", ""
    if method == "PUT":
        if "HTTP_X_AMZ_COPY_SOURCE" in environ:
            return ("UploadPartCopy" if "partNumber" in query else "CopyObject"), key
        return ("UploadPart" if "partNumber" in query else "PutObject"), key
    if method == "POST":
        return ("CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"), key
    if method == "DELETE":
        return ("AbortMultipartUpload" if "uploadId" in query else "DeleteObject"), key
    return {"GET": "GetObject", "HEAD": "HeadObject"}.get(method, method), key


def client_kind(environ: dict) -> str:
    agent = environ.get("HTTP_USER_AGENT", "").lower()
    if "boto" in agent:
        return "boto3"
    return "pyarrow" if "aws-sdk-cpp" in agent else "other"


@dataclass
class Rule:
    operation: str
    times: int  # calls still to fail
    status: int
    client: str | None  # boto3 / pyarrow / None for any
    key_contains: str


class FaultyS3:
    """The WSGI layer: `fail(...)` arms a rule; `seen` and `injected` count calls per
    (operation, client)."""

    def __init__(self, app):
        self.app = app
        self.rules: list[Rule] = []
        self.seen: Counter = Counter()
        self.injected: Counter = Counter()
        self.last_failed: dict[str, str] = {}  # operation -> the key of its last injected fault
        self._lock = threading.Lock()

    def fail(
        self,
        op: str,
        times: int = 1,
        status: int = 503,
        client: str | None = None,
        key_contains: str = "",
    ) -> None:
        with self._lock:
            self.rules.append(Rule(op, times, status, client, key_contains))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.seen.clear()
            self.injected.clear()

    def _take(self, op: str, key: str, kind: str) -> int | None:
        with self._lock:
            self.seen[op, kind] += 1
            for rule in self.rules:
                if (
                    rule.operation == op
                    and rule.times > 0
                    and rule.client in (None, kind)
                    and rule.key_contains in key
                ):
                    rule.times -= 1
                    self.injected[op, kind] += 1
                    self.last_failed[op] = key
                    return rule.status
        return None

    def __call__(self, environ, start_response):
        op, key = operation(environ)
        status = self._take(op, key, client_kind(environ))
        if status is None:
            return self.app(environ, start_response)
        # The request body is read, so the connection stays in step; then closed, as S3 does.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length or environ.get("wsgi.input_terminated"):
            environ["wsgi.input"].read(length or -1)
        line, code, message = ERRORS[status]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            "<RequestId>injected</RequestId></Error>"
        ).encode()
        headers = [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        start_response(line, headers)
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # a run makes thousands of calls
        pass


@contextlib.contextmanager
def faulty_s3_endpoint() -> Iterator[tuple[str, FaultyS3]]:
    """A second endpoint on moto's state (start `s3_endpoint` first): its URL and its faults."""
    faults = FaultyS3(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, faults, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", faults
    finally:
        server.shutdown()
        thread.join(10)
