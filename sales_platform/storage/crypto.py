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

from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from sales_platform.storage.ciphers import (
    ENC_PREFIX,
    LOCAL_KEY_FILE,
    MASTER_KEY_VAR,
    PII_PREFIX,
    FieldCipher,
    Keyring,
    MasterKeyError,
    PiiDecryptionError,
    SecretDecryptionError,
    generate_master_key,
    load_or_create_key_file,
    parse_master_keys,
)

__all__ = [
    "ENC_PREFIX",
    "LOCAL_KEY_FILE",
    "MASTER_KEY_VAR",
    "PII_PREFIX",
    "FieldCipher",
    "Keyring",
    "KeyringResource",
    "MasterKeyError",
    "PiiDecryptionError",
    "SecretDecryptionError",
    "generate_master_key",
    "load_or_create_key_file",
    "parse_master_keys",
]


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
