"""No key, password or token is committed: scan every file of the repository for key-like strings.

Also: no SQL text is assembled from Python strings in the package (values are bound parameters,
identifiers come from the fixed lists in `schemas`).

Skipped: the virtualenv, the local data dir (it holds the generated local master key by design,
and is git-ignored), VCS and tool caches, AWS's documented EXAMPLE credentials, and lines marked
`pragma: allowlist secret` (a deliberate, fake test vector). Test patterns below are assembled
at run time so that this file does not trip its own scan.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {
    ".venv",
    ".data",
    ".git",
    "__pycache__",
    ".ruff_cache",
    ".pytest_cache",
    "test-artifacts",
    "spark-warehouse",
    "metastore_db",
    "node_modules",
}
SKIP_SUFFIXES = (".egg-info",)
MAX_BYTES = 2_000_000

# Passwords that only show the shape of a URL in docs and docstrings.
PLACEHOLDER_PASSWORDS = {"password", "pw", "pass", "secret", "***", "xxx", "...", "<password>"}
# A deliberate test vector is marked on its line, as detect-secrets does.
ALLOW_MARKER = "pragma: allowlist secret"
# AWS's documented example credentials (they end in EXAMPLE / EXAMPLEKEY) are not keys.
_AWS_EXAMPLE = re.compile(r"EXAMPLE(?:KEY)?$")

_PATTERNS: dict[str, re.Pattern[str]] = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(
        r"(?i)aws_?secret_?access_?key\W{0,4}[=:]\s*['\"]?[A-Za-z0-9/+=]{40}\b"
    ),
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "Fernet key / enc token": re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"),
    "Fernet token": re.compile(r"\bgAAAAA[A-Za-z0-9_-]{60,}"),
    "GitHub / Slack token": re.compile(r"\b(?:ghp|gho|ghs|xox[abp])_[A-Za-z0-9]{20,}"),
}
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://([^/\s:@'\"`<>]+):([^@\s/'\"`<>]+)@")
_ASSIGNED_PASSWORD = re.compile(
    r"(?i)\b(?:password|passwd|pwd|secret|api_key|token)\b\s*[:=]\s*['\"]([^'\"\s]{8,})['\"]"
)


def _is_fernet_key(text: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(text)) == 32
    except ValueError:
        return False


def findings(text: str) -> list[tuple[str, str]]:
    """(kind, excerpt) for every key-like string in text; excerpts are cut so a report that
    quotes them does not leak the whole secret."""
    found = []
    for kind, pattern in _PATTERNS.items():
        for match in pattern.finditer(text):
            value = match.group(0)
            if kind == "Fernet key / enc token" and not _is_fernet_key(value):
                continue
            if kind.startswith("AWS") and _AWS_EXAMPLE.search(value):
                continue
            found.append((kind, value[:8] + "…"))
    for match in _URL_PASSWORD.finditer(text):
        password = match.group(2)
        if password.lower() in PLACEHOLDER_PASSWORDS or password.startswith(("${", "{", "%(")):
            continue
        found.append(("password in a URL", f"{match.group(1)}:{password[:2]}…@"))
    for match in _ASSIGNED_PASSWORD.finditer(text):
        value = match.group(1)
        if value.lower() in PLACEHOLDER_PASSWORDS or value.startswith(("${", "{", "<")):
            continue
        found.append(("assigned secret", value[:3] + "…"))
    return found


def repo_files(root: Path = REPO):
    stack = [root]
    while stack:
        folder = stack.pop()
        for path in sorted(folder.iterdir()):
            if path.is_dir():
                if path.name not in SKIP_DIRS and not path.name.endswith(SKIP_SUFFIXES):
                    stack.append(path)
            elif path.is_file() and path.stat().st_size <= MAX_BYTES:
                yield path


def test_scanner_finds_each_kind_of_secret():
    fernet = base64.urlsafe_b64encode(bytes(range(32))).decode()
    samples = {
        "AWS access key id": "AKIA" + "Z7" * 8,
        "AWS secret access key": "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG" + "A" * 19,
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "Fernet key / enc token": f"SALES_PLATFORM_MASTER_KEY={fernet}",
        "Fernet token": "enc:" + "gAAAAA" + "Bk" * 40,
        "password in a URL": "mysql+pymysql://app:" + "Tr0ub4dor" + "@db:3306/sales",
        "assigned secret": "password = '" + "hunter2hunter2" + "'",
    }
    for kind, text in samples.items():
        assert kind in {k for k, _ in findings(text)}, kind
    harmless = [
        "mysql+pymysql://user:password@host:3306/sales",
        "mysql+pymysql://user:pw@host/db",
        "postgres://u:${DB_PASSWORD}@h/db",
        "sha256=" + "ab" * 32,
        "password = '${RUNTIME_PASSWORD}'",
    ]
    for text in harmless:
        assert findings(text) == [], text
    assert findings("aws_access_key_id = AKIA" + "IOSFODNN7" + "EXAMPLE") == []


def test_repository_holds_no_key_like_strings():
    problems = []
    scanned = 0
    for path in repo_files():
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary
        scanned += 1
        for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
            if ALLOW_MARKER in line:
                continue
            for kind, excerpt in findings(line):
                problems.append(f"{path.relative_to(REPO)}:{n}: {kind} ({excerpt})")
    assert scanned > 20
    assert not problems, "key-like strings in the repository:\n" + "\n".join(problems)


# --- SQL built from strings ----------------------------------------------------------------

_SQL_FROM_STRINGS = re.compile(
    r"""(?:text|execute|exec_driver_sql|executescript)\(\s*(?:f["']|["'][^"']*["']\s*(?:%|\+|\.format))"""
)


@pytest.mark.parametrize("folder", ["sales_platform", "benchmarks"])
def test_no_sql_is_assembled_from_python_strings(folder):
    offenders = []
    for path in (REPO / folder).rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if _SQL_FROM_STRINGS.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "SQL assembled from strings:\n" + "\n".join(offenders)
