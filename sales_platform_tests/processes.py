"""Dagster services as real subprocesses in tests: start, wait until ready, always stop.

Every service starts in a session of its own with a marker variable in its environment. Its
code servers and run workers inherit both, so at the end the whole tree is found and killed even
if a parent died first, and `left_running(marker)` can prove that nothing survived.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER_VAR = "SALES_PLATFORM_TEST_SERVICE"
BIN = Path(sys.executable).parent
CODE_LOCATION = "sales_platform.definitions"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    """A started service: its process, its log file, and the marker its descendants carry."""

    name: str
    process: subprocess.Popen
    log_path: Path
    marker: str
    base_url: str | None = None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        """POST a GraphQL document to the webserver; returns `data`, raises on errors."""
        assert self.base_url, f"{self.name} serves no HTTP"
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.base_url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]


def start(
    name: str, command: list[str], env: dict[str, str], log_dir: Path, base_url: str | None = None
) -> Service:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    marker = f"{name}-{uuid.uuid4().hex[:12]}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**env, MARKER_VAR: marker},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name, process, log_path, marker, base_url)


def wait_for_http(service: Service, path: str = "/server_info", timeout: float = 180) -> None:
    """Until the service answers 200 on `path`; fails at once if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise AssertionError(
                f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{service.base_url}{path}", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{service.name} not ready after {timeout:.0f} s:\n{service.log_tail()}")


def wait_for_code_location(service: Service, timeout: float = 180) -> None:
    """Until the webserver has loaded the code location (its first load imports PySpark)."""
    query = """
    { workspaceOrError { ... on Workspace { locationEntries {
        name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
    } } } }
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = service.graphql(query)["workspaceOrError"]["locationEntries"]
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
            assert not errors, errors[0]["locationOrLoadError"]["message"]
            return
        time.sleep(1)
    raise AssertionError(f"code location not loaded after {timeout:.0f} s")


def webserver_command(port: int) -> list[str]:
    return [
        str(BIN / "dagster-webserver"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--module-name",
        CODE_LOCATION,
    ]


def serve_command(port: int, stop_timeout: float = 60) -> list[str]:
    """`sales-platform serve`: the webserver and the daemon, as an operator starts them."""
    return [
        str(BIN / "sales-platform"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--stop-timeout",
        str(stop_timeout),
    ]


def left_running(marker: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose environment carries the marker."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            status = (entry / "stat").read_text()
            if status.rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie runs nothing; its parent reaps it
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited meanwhile, or not ours to read
        found.append((int(entry.name), cmdline.strip()))
    return found


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the direct children of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent != pid:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((int(entry.name), cmdline.strip()))
    return found


def wait_until_gone(marker: str, timeout: float = 30) -> list[tuple[int, str]]:
    """Processes of the marker still running after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (remaining := left_running(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return remaining


@dataclass(frozen=True)
class Stopped:
    exit_code: int | None  # None: it did not exit within the timeout and was killed
    survivors: list[tuple[int, str]]  # its tree still running once it had exited (then killed)


def stop(service: Service, timeout: float = 90, grace: float = 30) -> Stopped:
    """SIGTERM the service, wait for it, and report what of its tree outlived it.

    Whatever is still running afterwards is killed, so no test leaves a process behind even
    when it failed half-way.
    """
    if service.alive():
        service.process.send_signal(signal.SIGTERM)
    try:
        code = service.process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    survivors = wait_until_gone(service.marker, grace) if code is not None else []
    survivors = survivors or left_running(service.marker)
    kill_tree(service)
    return Stopped(code, survivors)


def kill_tree(service: Service) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(service.process.pid, sig)
        for pid, _ in left_running(service.marker):
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        if not wait_until_gone(service.marker, timeout=5 if sig == signal.SIGTERM else 10):
            break
    if service.process.poll() is None:
        service.process.wait(10)


@contextmanager
def running(service: Service) -> Iterator[Service]:
    """Yield the service; whatever happens, stop it and its whole tree afterwards."""
    try:
        yield service
    finally:
        if service.alive() or left_running(service.marker):
            stop(service)


# Headless Chromium as it works on a bare CI machine: no sandbox (root in a container), no GPU,
# no network beyond loopback, a throwaway profile. Virtual time lets the UI finish its queries
# and lay out the graph before the page is captured.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=20000",
]


def chromium(
    url: str, action: list[str], profile: Path, window: str = "1920,1400", timeout: float = 120
) -> str:
    """Run headless Chromium on `url` with `action` (--screenshot=…, --dump-dom); its stdout.

    Chromium forks helpers (zygote, renderers): its whole session is killed afterwards.
    """
    command = [
        "chromium",
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={window}",
        *action,
        url,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    if process.returncode != 0:
        raise AssertionError(f"chromium exited {process.returncode}: {err.decode()[-2000:]}")
    return out.decode(errors="replace")
