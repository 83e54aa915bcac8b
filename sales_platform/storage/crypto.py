"""Keys and encryption: configuration secrets (`enc:` tokens) and customer PII in the lake.

One setting, `SALES_PLATFORM_MASTER_KEY`, holds the master key: one or more Fernet keys,
comma-separated, newest first. The newest key encrypts; every listed key decrypts, so a key is
rotated by putting a new one in front, re-encrypting (`sales-platform secrets rotate`) and then
dropping the old one. Nothing in the repository, the lake or the logs holds a key.

Two uses of the same master key:

- configuration values: a value written as `enc:<Fernet token>` (for example a database URL
  holding a password) is decrypted when the resource that needs it starts (`Keyring.reveal`);
- PII fields in the lake: each value is encrypted on its own with AES-256-GCM under a data key
  derived from a master key (HKDF-SHA256), and stored as `pii1:<key id>:<base64 nonce+ciphertext>`.
  The key id names the master key that protects the value, so a reader picks the key directly and
  a rotation knows which values are still on an old key. The associated data binds each value to
  its asset, column and row key: a value copied to another row or column fails authentication.

A value that cannot be decrypted (unknown key id, altered ciphertext, wrong key) raises an error
that names the asset, column, row key and key id: never a silent null, never the value itself.

Locally, when the variable is unset, a master key is generated once into `<data dir>/master.key`
(mode 0600). In prod the variable is required (an `EnvVar` without default).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import dagster as dg
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import Field, PrivateAttr

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
        self._pii_keys = [(kid, _derive_pii_key(raw)) for kid, raw in zip(self.key_ids, raws,
                                                                          strict=True)]

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
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MasterKeyError(
            f"master key file {path} is accessible to other users (mode {mode:o}); "
            f"run `chmod 600 {path}`"
        )
    return path.read_text(encoding="ascii").strip()


class KeyringResource(dg.ConfigurableResource):
    """The master key for the run: from `SALES_PLATFORM_MASTER_KEY` (an EnvVar), or locally a
    generated key file. Decrypts `enc:` configuration values and the customers' PII."""

    master_key: str | None = Field(
        default=None,
        description="Fernet keys, comma-separated, newest first (set through EnvVar only)",
    )
    key_file: str | None = Field(
        default=None,
        description="local only: file holding the master key, generated on first use",
    )

    _keyring: Keyring | None = PrivateAttr(default=None)

    def keyring(self) -> Keyring:
        if self._keyring is None:
            if self.master_key:
                self._keyring = Keyring.from_text(self.master_key, MASTER_KEY_VAR)
            elif self.key_file:
                text = load_or_create_key_file(Path(self.key_file))
                self._keyring = Keyring.from_text(text, f"key file {self.key_file}")
            else:
                raise MasterKeyError(f"{MASTER_KEY_VAR} is not set")
        return self._keyring

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Fail at resource start, with the reason, rather than in the middle of a step.
        self.keyring()


def reveal_all(keyring: Keyring | None, values: Iterable[tuple[str, str]]) -> dict[str, str]:
    """{name: plaintext} of named configuration values, `enc:` tokens decrypted."""
    out = {}
    for name, value in values:
        if value.startswith(ENC_PREFIX) and keyring is None:
            raise SecretDecryptionError(f"{name} is an enc: token but no master key is configured")
        out[name] = keyring.reveal(value, name) if keyring is not None else value
    return out
