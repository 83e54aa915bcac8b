"""Key handling and the two encryptions: `enc:` configuration tokens and PII field values."""

from __future__ import annotations

import os
import pickle
import secrets
import stat

import pytest

from sales_platform.storage.crypto import (
    ENC_PREFIX,
    FieldCipher,
    Keyring,
    MasterKeyError,
    PiiDecryptionError,
    SecretDecryptionError,
    generate_master_key,
    load_or_create_key_file,
    parse_master_keys,
)

HOSTILE = ["Robert'); DROP TABLE customer;--", "", 'Zoë 👩‍💻 \\ "x" %s :name\n\t', "a" * 300]


def _aads(n: int) -> list[bytes]:
    return [f"sales_platform|customers.phone_number|{i}".encode() for i in range(n)]


# --- master keys ---------------------------------------------------------------------------


def test_master_keys_parse_newest_first_and_ids_are_not_the_keys():
    new, old = generate_master_key(), generate_master_key()
    keyring = Keyring.from_text(f" {new} , {old} ")
    assert len(keyring.key_ids) == 2 and keyring.newest_key_id == keyring.key_ids[0]
    assert Keyring.from_text(new).key_ids == keyring.key_ids[:1]
    assert all(kid not in new and kid not in old for kid in keyring.key_ids)


@pytest.mark.parametrize(
    "text, message",
    [("", "is empty"), (" , ", "is empty"), ("not-a-key", "key #1 of 1"), ("{k},abc", "key #2")],
)
def test_malformed_master_key_is_refused_without_echoing_it(text, message):
    good = generate_master_key()
    text = text.format(k=good)
    with pytest.raises(MasterKeyError, match=message) as info:
        parse_master_keys(text)
    assert good not in str(info.value) and "abc" not in str(info.value)


def test_the_same_key_twice_is_refused():
    key = generate_master_key()
    with pytest.raises(MasterKeyError, match="same key twice"):
        parse_master_keys(f"{key},{key}")


# --- enc: configuration values -------------------------------------------------------------


def test_enc_token_round_trips_and_plain_values_pass_through():
    keyring = Keyring.from_text(generate_master_key())
    url = "mysql+pymysql://app:" + secrets.token_urlsafe(12) + "%40'@db.internal:3306/sales"
    token = keyring.encrypt_secret(url)
    assert token.startswith(ENC_PREFIX) and url not in token
    assert keyring.reveal(token) == url
    assert keyring.reveal("sqlite:///plain.db") == "sqlite:///plain.db"


def test_enc_token_under_a_wrong_key_fails_clearly_without_echoing_it():
    token = Keyring.from_text(generate_master_key()).encrypt_secret("s3cret-value")
    other = Keyring.from_text(generate_master_key())
    with pytest.raises(SecretDecryptionError, match="wrong master key") as info:
        other.reveal(token, "SALES_PLATFORM_WAREHOUSE_DB_URL")
    assert token[10:] not in str(info.value) and "s3cret" not in str(info.value)
    assert "SALES_PLATFORM_WAREHOUSE_DB_URL" in str(info.value)


def test_tampered_enc_token_fails():
    keyring = Keyring.from_text(generate_master_key())
    token = keyring.encrypt_secret("value")
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SecretDecryptionError):
        keyring.reveal(tampered)


def test_enc_token_rotation_keeps_old_tokens_readable_until_the_old_key_goes():
    old, new = generate_master_key(), generate_master_key()
    token = Keyring.from_text(old).encrypt_secret("value")
    both = Keyring.from_text(f"{new},{old}")
    assert both.reveal(token) == "value"
    rotated = both.rotate_secret(token)
    assert Keyring.from_text(new).reveal(rotated) == "value"
    with pytest.raises(SecretDecryptionError):
        Keyring.from_text(new).reveal(token)


# --- PII field values ----------------------------------------------------------------------


def test_field_values_round_trip_verbatim_with_a_key_id_and_fresh_nonces():
    keyring = Keyring.from_text(generate_master_key())
    cipher = keyring.field_cipher()
    values = [*HOSTILE, None, HOSTILE[0]]
    tokens = cipher.encrypt_many(values, _aads(len(values)))
    assert tokens[len(HOSTILE)] is None
    for token in filter(None, tokens):
        assert token.startswith(f"pii1:{keyring.newest_key_id}:")
    # The same plaintext twice encrypts differently: equal values are not visible as such.
    assert tokens[0] != tokens[-1]
    assert cipher.decrypt_many(tokens, _aads(len(values)), "customers.phone_number") == values


def test_value_under_a_key_no_longer_configured_names_the_key_id():
    old = Keyring.from_text(generate_master_key())
    token = old.field_cipher().encrypt_many(["+91 9000000001"], _aads(1))
    new = Keyring.from_text(generate_master_key()).field_cipher()
    with pytest.raises(PiiDecryptionError) as info:
        new.decrypt_many(token, _aads(1), "customers.phone_number", [17])
    message = str(info.value)
    assert "customers.phone_number (row key 17)" in message
    assert old.newest_key_id in message and "secrets rotate" in message
    assert "9000000001" not in message


@pytest.mark.parametrize("position", [-3, 20, 30])
def test_tampered_value_fails_authentication(position):
    cipher = Keyring.from_text(generate_master_key()).field_cipher()
    [token] = cipher.encrypt_many(["+91 9000000001"], _aads(1))
    flipped = "A" if token[position] != "A" else "B"
    tampered = token[:position] + flipped + token[position + 1 :]
    with pytest.raises(PiiDecryptionError, match="failed authentication"):
        cipher.decrypt_many([tampered], _aads(1), "customers.phone_number")


def test_value_moved_to_another_row_or_column_fails_authentication():
    cipher = Keyring.from_text(generate_master_key()).field_cipher()
    tokens = cipher.encrypt_many(["+91 9000000001", "+91 9000000002"], _aads(2))
    swapped = [tokens[1], tokens[0]]
    with pytest.raises(PiiDecryptionError, match="moved from another row or column"):
        cipher.decrypt_many(swapped, _aads(2), "customers.phone_number")
    other_column = [b"sales_platform|customers.address|0"]
    with pytest.raises(PiiDecryptionError):
        cipher.decrypt_many(tokens[:1], other_column, "customers.address")


@pytest.mark.parametrize("stored", ["+91 9000000001", "pii1:abc", "pii1:xx:yy:zz", "enc:abc"])
def test_plaintext_or_garbage_where_ciphertext_belongs_is_an_error_not_a_value(stored):
    cipher = Keyring.from_text(generate_master_key()).field_cipher()
    with pytest.raises(PiiDecryptionError) as info:
        cipher.decrypt_many([stored], _aads(1), "customers.phone_number")
    assert stored not in str(info.value)


def test_field_cipher_pickles_for_spark_workers_and_holds_no_master_key():
    master = generate_master_key()
    cipher = Keyring.from_text(master).field_cipher()
    [token] = cipher.encrypt_many(["x"], _aads(1))
    blob = pickle.dumps(cipher)
    assert master.encode() not in blob
    assert pickle.loads(blob).decrypt_many([token], _aads(1), "c") == ["x"]
    assert FieldCipher.key_id_of(token) == cipher.newest_key_id


# --- the local key file --------------------------------------------------------------------


def test_local_key_file_is_generated_once_with_mode_0600(tmp_path):
    path = tmp_path / "data" / "master.key"
    first = load_or_create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key_file(path) == first
    assert Keyring.from_text(first).key_ids
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]


def test_local_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "master.key"
    load_or_create_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_or_create_key_file(path)
