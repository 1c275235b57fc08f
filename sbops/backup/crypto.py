"""Encryption of a backup archive with a passphrase: scrypt (KDF) + AES-256-GCM (AEAD), in chunks.

Format (all integers big-endian):
    MAGIC (8 bytes "SBOPSENC") | version (1 byte, 1) | header length (4) | header (JSON, UTF-8)
    then chunks: ciphertext length (4) | ciphertext (plaintext chunk + 16-byte tag)

The header names the KDF and its parameters, the salt, the AEAD and the chunk size; it is bound to every chunk
as associated data, so changing a parameter fails authentication. Each chunk's 12-byte nonce is a random 7-byte
prefix, a 4-byte chunk counter and a 1-byte "last chunk" flag (the STREAM construction): chunks cannot be
reordered, dropped or moved between archives, and an archive cut at a chunk boundary is refused because its last
chunk does not carry the flag. Large archives therefore never need to fit in memory.

The library is `cryptography` (pyca): nothing here implements a primitive.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from pathlib import Path
from typing import BinaryIO

MAGIC = b"SBOPSENC"
VERSION = 1
CHUNK = 1 << 20  # 1 MiB of plaintext per chunk
TAG = 16
SCRYPT = {"n": 1 << 15, "r": 8, "p": 1}  # about 32 MiB and 0.1 s: the cost of each guess


class CryptoError(Exception):
    """The archive cannot be decrypted: wrong passphrase, tampered, truncated, or not ours."""


def is_encrypted(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def read_passphrase(path: str | Path) -> bytes:
    """The passphrase file's first line (without its newline); UsageError-worthy problems raise ValueError."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the passphrase file: {exc.strerror or exc}") from None
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    if len(line) < 8:
        raise ValueError(f"{path}:1: the passphrase must be at least 8 characters")
    return line


def derive_key(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    """Pure: the 12-byte nonce of chunk `counter`."""
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


def _header(salt: bytes, prefix: bytes) -> bytes:
    body = json.dumps({"kdf": "scrypt", **SCRYPT, "salt": base64.b64encode(salt).decode(), "aead": "AES-256-GCM",
                       "chunk": CHUNK, "nonce_prefix": base64.b64encode(prefix).decode()}, sort_keys=True).encode()
    return MAGIC + bytes([VERSION]) + struct.pack(">I", len(body)) + body


def encrypt_stream(source: BinaryIO, target: BinaryIO, passphrase: bytes) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, prefix = os.urandom(16), os.urandom(7)
    header = _header(salt, prefix)
    aead = AESGCM(derive_key(passphrase, salt, **SCRYPT))
    target.write(header)
    counter = 0
    chunk = source.read(CHUNK)
    while True:
        following = source.read(CHUNK)
        last = not following
        sealed = aead.encrypt(nonce(prefix, counter, last), chunk, header)
        target.write(struct.pack(">I", len(sealed)) + sealed)
        if last:
            return
        counter += 1
        chunk = following


def _read_exact(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    return data if data is not None else b""


def read_header(source: BinaryIO) -> tuple[bytes, dict]:
    start = _read_exact(source, len(MAGIC) + 5)
    if len(start) < len(MAGIC) + 5 or not start.startswith(MAGIC):
        raise CryptoError("not an encrypted sbops archive (no SBOPSENC header)")
    if start[len(MAGIC)] != VERSION:
        raise CryptoError(f"encrypted archive format version {start[len(MAGIC)]} is not supported (this sbops reads 1)")
    (length,) = struct.unpack(">I", start[len(MAGIC) + 1:])
    if length > 4096:
        raise CryptoError("encrypted archive header is damaged (implausible length)")
    body = _read_exact(source, length)
    try:
        params = json.loads(body)
        if params.get("kdf") != "scrypt" or params.get("aead") != "AES-256-GCM":
            raise CryptoError(f"unsupported KDF/AEAD {params.get('kdf')}/{params.get('aead')}")
        params["salt_bytes"] = base64.b64decode(params["salt"])
        params["prefix_bytes"] = base64.b64decode(params["nonce_prefix"])
        if len(params["prefix_bytes"]) != 7 or int(params["chunk"]) <= 0:
            raise ValueError("nonce prefix or chunk size")
    except CryptoError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise CryptoError(f"encrypted archive header is damaged ({exc})") from None
    return start + body, params


def decrypt_stream(source: BinaryIO, target: BinaryIO, passphrase: bytes) -> None:
    """Decrypt into `target`; CryptoError names the chunk that failed, or says the archive is cut short."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header, params = read_header(source)
    aead = AESGCM(derive_key(passphrase, params["salt_bytes"], int(params["n"]), int(params["r"]), int(params["p"])))
    limit = int(params["chunk"]) + TAG
    counter = 0
    while True:
        head = _read_exact(source, 4)
        if not head:
            raise CryptoError(f"encrypted archive is truncated: it ends after chunk {counter} without its last chunk")
        if len(head) < 4:
            raise CryptoError(f"encrypted archive is truncated inside chunk {counter + 1}")
        (length,) = struct.unpack(">I", head)
        if length > limit or length < TAG:
            raise CryptoError(f"encrypted archive is damaged at chunk {counter + 1} (implausible length)")
        sealed = _read_exact(source, length)
        if len(sealed) < length:
            raise CryptoError(f"encrypted archive is truncated inside chunk {counter + 1}")
        plain = None
        for last in (False, True):
            try:
                plain = aead.decrypt(nonce(params["prefix_bytes"], counter, last), sealed, header)
            except InvalidTag:
                continue
            break
        if plain is None:
            if counter == 0:
                raise CryptoError("cannot decrypt the archive: wrong passphrase, or its first chunk was tampered with")
            raise CryptoError(f"encrypted archive chunk {counter + 1} fails authentication (tampered or damaged)")
        target.write(plain)
        counter += 1
        if last:
            if source.read(1):
                raise CryptoError(f"encrypted archive has data after its last chunk ({counter}): tampered")
            return
