"""Encryption primitives without Dagster: master keys, `enc:` tokens, PII field values.

Split from `crypto` (which adds the Dagster resource) because Spark's Python workers unpickle a
`FieldCipher` for every PII column batch: importing Dagster there would add seconds to every
worker start. See `crypto` for the scheme.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_KEY_VAR = "SALES_PLATFORM_MASTER_KEY"
LOCAL_KEY_FILE = "master.key"
ENC_PREFIX = "enc:"
PII_PREFIX = "pii1"
_NONCE_BYTES = 12
# HKDF labels: a new label is a new, independent key, so the PII key never equals a Fernet key.
_PII_KEY_INFO = b"sales_platform/pii/aes-256-gcm/v1"
_KEY_ID_LABEL = b"sales_platform/key-id/v1"


class MasterKeyError(ValueError):
    """The master key setting is missing or malformed (the message never contains key material)."""


class SecretDecryptionError(ValueError):
    """An `enc:` configuration value does not decrypt with any configured master key."""


class PiiDecryptionError(ValueError):
    """A PII value in the lake is unreadable: altered, misplaced, or under a key not configured."""


def generate_master_key() -> str:
    """A fresh master key (a Fernet key: 32 random bytes, url-safe base64)."""
    return Fernet.generate_key().decode("ascii")


def _key_id(raw: bytes) -> str:
    # A short hash, not the key: it identifies the key in ciphertexts and logs and reveals nothing.
    return hashlib.sha256(_KEY_ID_LABEL + raw).hexdigest()[:8]


def parse_master_keys(text: str, source: str = MASTER_KEY_VAR) -> list[bytes]:
    """The Fernet keys of a master key setting ("newest,older,..."), checked, newest first."""
    parts = [p.strip() for p in (text or "").split(",")]
    parts = [p for p in parts if p]
    if not parts:
        raise MasterKeyError(f"{source} is empty: it must hold at least one Fernet key")
    keys: list[bytes] = []
    for n, part in enumerate(parts, start=1):
        try:
            raw = base64.urlsafe_b64decode(part.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raw = b""
        if len(raw) != 32:
            raise MasterKeyError(
                f"{source}: key #{n} of {len(parts)} is not a Fernet key (32 bytes, url-safe "
                "base64; make one with `sales-platform secrets new-key`)"
            )
        keys.append(part.encode("ascii"))
    ids = [_key_id(base64.urlsafe_b64decode(k)) for k in keys]
    if len(set(ids)) != len(ids):
        raise MasterKeyError(f"{source} lists the same key twice")
    return keys


class FieldCipher:
    """AES-256-GCM for single field values; picklable, so Spark can ship it to its workers.

    Holds the derived PII data keys only (never the master keys), newest first.
    """

    def __init__(self, keys: Sequence[tuple[str, bytes]]):
        if not keys:
            raise MasterKeyError("no PII key configured")
        self._keys = {kid: key for kid, key in keys}
        self.newest_key_id = keys[0][0]
        self._aead: dict[str, AESGCM] = {}

    def __getstate__(self) -> dict:
        return {"_keys": self._keys, "newest_key_id": self.newest_key_id}

    def __setstate__(self, state: dict) -> None:
        self._keys = state["_keys"]
        self.newest_key_id = state["newest_key_id"]
        self._aead = {}

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def _cipher(self, kid: str) -> AESGCM:
        aead = self._aead.get(kid)
        if aead is None:
            aead = self._aead[kid] = AESGCM(self._keys[kid])
        return aead

    def encrypt_many(self, values: Sequence[str | None], aads: Sequence[bytes]) -> list[str | None]:
        """Encrypt each value with the newest key; None stays None (there is nothing to hide)."""
        kid = self.newest_key_id
        aead = self._cipher(kid)
        head = f"{PII_PREFIX}:{kid}:"
        # One call to the OS random source per batch, not one per value.
        nonces = os.urandom(_NONCE_BYTES * len(values))
        out: list[str | None] = []
        for i, (value, aad) in enumerate(zip(values, aads, strict=True)):
            if value is None:
                out.append(None)
                continue
            nonce = nonces[i * _NONCE_BYTES : (i + 1) * _NONCE_BYTES]
            sealed = nonce + aead.encrypt(nonce, value.encode("utf-8"), aad)
            out.append(head + base64.urlsafe_b64encode(sealed).decode("ascii"))
        return out

    def decrypt_many(
        self,
        tokens: Sequence[str | None],
        aads: Sequence[bytes],
        where: str,
        row_keys: Sequence[object] | None = None,
    ) -> list[str | None]:
        """Decrypt each token; None stays None. Raises PiiDecryptionError on the first bad value.

        `where` ("asset.column") and the row key name the value in the error; the value and the
        ciphertext never appear in it.
        """
        out: list[str | None] = []
        for i, (token, aad) in enumerate(zip(tokens, aads, strict=True)):
            if token is None:
                out.append(None)
                continue
            try:
                out.append(self._decrypt_one(token, aad))
            except PiiDecryptionError as exc:
                row = f" (row key {row_keys[i]!r})" if row_keys is not None else ""
                raise PiiDecryptionError(f"{where}{row}: {exc}") from None
        return out

    def _decrypt_one(self, token: str, aad: bytes) -> str:
        parts = token.split(":", 2)
        if len(parts) != 3 or parts[0] != PII_PREFIX:
            raise PiiDecryptionError(
                f"not a PII ciphertext (expected '{PII_PREFIX}:<key id>:<data>'); the lake holds "
                "plaintext or an altered value here"
            )
        _, kid, data = parts
        if kid not in self._keys:
            raise PiiDecryptionError(
                f"encrypted with key id {kid}, which is not among the configured master keys "
                f"(ids {', '.join(self._keys)}): was {MASTER_KEY_VAR} changed without keeping "
                "the old key after the new one? Add it back and run `sales-platform secrets rotate`"
            )
        try:
            sealed = base64.urlsafe_b64decode(data.encode("ascii"))
            if len(sealed) < _NONCE_BYTES + 16:
                raise ValueError("too short")
            plain = self._cipher(kid).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], aad)
        except (InvalidTag, ValueError, binascii.Error, UnicodeEncodeError):
            raise PiiDecryptionError(
                f"failed authentication under key id {kid}: the ciphertext was altered or moved "
                "from another row or column, or the key behind this id is not the one that "
                "encrypted it"
            ) from None
        return plain.decode("utf-8")

    @staticmethod
    def key_id_of(token: str | None) -> str | None:
        if token is None:
            return None
        parts = token.split(":", 2)
        return parts[1] if len(parts) == 3 and parts[0] == PII_PREFIX else None


class Keyring:
    """The master keys, newest first: decrypts `enc:` values and yields the PII field cipher."""

    def __init__(self, master_keys: Sequence[bytes | str], source: str = MASTER_KEY_VAR):
        keys = [k.encode("ascii") if isinstance(k, str) else k for k in master_keys]
        if not keys:
            raise MasterKeyError(f"{source} is empty: it must hold at least one Fernet key")
        self._source = source
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        raws = [base64.urlsafe_b64decode(k) for k in keys]
        self.key_ids: tuple[str, ...] = tuple(_key_id(r) for r in raws)
        self._pii_keys = [
            (kid, _derive_pii_key(raw)) for kid, raw in zip(self.key_ids, raws, strict=True)
        ]

    @classmethod
    def from_text(cls, text: str, source: str = MASTER_KEY_VAR) -> Keyring:
        return cls(parse_master_keys(text, source), source)

    @property
    def newest_key_id(self) -> str:
        return self.key_ids[0]

    def encrypt_secret(self, plaintext: str) -> str:
        """`enc:` token of a configuration value, under the newest key."""
        return ENC_PREFIX + self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def reveal(self, value: str, name: str = "configuration value") -> str:
        """The plaintext of an `enc:` token; any other value is returned as it is."""
        if not value.startswith(ENC_PREFIX):
            return value
        try:
            return self._fernet.decrypt(value[len(ENC_PREFIX) :].encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise SecretDecryptionError(
                f"{name} is an enc: token that none of the keys in {self._source} (ids "
                f"{', '.join(self.key_ids)}) decrypts: wrong master key, or the token was altered"
            ) from None

    def rotate_secret(self, token: str) -> str:
        """The same `enc:` value re-encrypted under the newest key."""
        if not token.startswith(ENC_PREFIX):
            raise SecretDecryptionError("not an enc: token")
        plain = self.reveal(token)
        return self.encrypt_secret(plain)

    def field_cipher(self) -> FieldCipher:
        return FieldCipher(self._pii_keys)


def _derive_pii_key(master_raw: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PII_KEY_INFO).derive(
        master_raw
    )


def load_or_create_key_file(path: Path) -> str:
    """The local master key in `path`, generated on first use (mode 0600, never overwritten).

    Refuses a file that others can read: a key readable by every user protects nothing.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(generate_master_key() + "\n")
                f.flush()
                os.fsync(f.fileno())
            # link() fails if another process created the file first: the first key wins.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MasterKeyError(
            f"master key file {path} is accessible to other users (mode {mode:o}); "
            f"run `chmod 600 {path}`"
        )
    return path.read_text(encoding="ascii").strip()
