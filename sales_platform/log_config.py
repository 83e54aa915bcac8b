"""Logging for the platform: redacted always, JSON on request for log shipping.

Project code logs through `get_logger(__name__)`: loggers under `sales_platform`, which
`dagster.yaml` hands to Dagster (`python_logs.managed_python_loggers`), so their records appear
in the run's event log. Every such logger carries the redaction filter, so a secret or a piece
of personal data that slips into a message is masked before any handler, Dagster's included,
sees it. Messages are meant to carry counts and keys, never rows; the filter is the net under
that rule, not the rule.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

MASK = "[redacted]"

# Phone numbers: digits with optional +, spaces, dots, dashes and parentheses; masked only when
# they hold 10 or more digits, so dates, counts and money amounts stay readable.
_PHONE_LIKE = re.compile(r"(?<![\w.])\+?\(?\d[\d\s().-]{7,}\d(?![\w])")


_MONEY = re.compile(r"\d+\.\d{2}")


def _mask_phone(match: re.Match[str]) -> str:
    text = match.group()
    if _MONEY.fullmatch(text) or sum(c.isdigit() for c in text) < 10:
        return text
    return MASK


_PATTERNS: list[tuple[re.Pattern[str], object]] = [
    # user:password@ in any URL (database and broker URLs).
    (re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.I), rf"\g<head>{MASK}@"),
    # key=value and key: value for the usual secret names.
    (
        re.compile(
            r"(?P<head>\b[\w-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key"
            r"|master[_-]?key)[\w-]*[\"']?\s*[:=]\s*)[\"']?[^\s,;\"']+",
            re.I,
        ),
        rf"\g<head>{MASK}",
    ),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),  # AWS access key ids
    (re.compile(r"\benc:[A-Za-z0-9_\-=.:]{16,}"), MASK),  # encrypted config tokens
    (re.compile(r"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]{43}=(?![A-Za-z0-9_\-=])"), MASK),  # Fernet keys
    (re.compile(r"\bgAAAAA[A-Za-z0-9_\-=]{20,}"), MASK),  # Fernet tokens (ciphertext)
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), MASK),  # e-mail addresses
    (_PHONE_LIKE, _mask_phone),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets and personal data in a record's message (arguments merged in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[1] is not None:
            # Exception text reaches handlers too: render it now, redacted.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Dagster's log manager attaches the run's identity to its records.
        meta = getattr(record, "dagster_meta", None)
        if isinstance(meta, dict):
            for key in ("run_id", "job_name", "step_key"):
                if meta.get(key):
                    payload[key] = meta[key]
        if record.exc_text:
            payload["exception"] = record.exc_text
        return json.dumps(payload, default=str)


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """A logger under `sales_platform` with the redaction filter on it (filters do not inherit)."""
    if not name.startswith("sales_platform"):
        name = f"sales_platform.{name}"
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
