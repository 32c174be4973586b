"""The audit chain's secret key: a file outside the database, with the deployment's secrets.

Event hashes are HMAC-SHA256 under this key (``study.audit``), so someone who can write the
database file but cannot read the key cannot produce a chain that verifies. The key is 32 random
bytes, stored as 64 hex digits and a newline in the file named by ``CLINVAL_AUDIT_KEY_FILE``
(mode 600, created with the database by ``python -m study init``, ``demo`` or the app). Losing
the file does not lose data: ``audit verify`` still checks the chain's structure and the stored
rows, and says that it could not check the keys; writing new events needs the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from study.errors import ConfigError

KEY_BYTES = 32


def load(path: Path, *, create: bool = False) -> bytes | None:
    """The key in ``path``; None when the file is missing and ``create`` is false.

    With ``create``, a missing file is made (and its folder, mode 700), exclusively, so two
    processes starting at once end up with the same key. A file that is not 64 hex digits is a
    ``ConfigError`` (never silently replaced: events keyed with the old key would stop verifying).
    """
    if create and not path.is_file():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # made meanwhile by another process: read theirs
        else:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(KEY_BYTES) + "\n")
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"The audit key file (CLINVAL_AUDIT_KEY_FILE) cannot be read: {exc}"
        ) from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"The audit key file (CLINVAL_AUDIT_KEY_FILE) must hold {2 * KEY_BYTES} hex digits."
        )
    return key


def mac(key: bytes, text: str) -> str:
    """HMAC-SHA256 of ``text`` (UTF-8) under ``key``, as 64 hex digits."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def fingerprint(key: bytes) -> str:
    """A name for the key that reveals nothing of it (16 hex digits), stored with the chain so
    that a wrong key file is told apart from a forged chain."""
    return mac(key, "clinval audit key id")[:16]


def head_seal(key: bytes, seq: int, event_hash: str, keyed_from: int, key_id: str) -> str:
    """The seal of the audit chain's head and of the chain's own metadata: HMAC of the head's
    seq and hash, the first keyed seq and the key's fingerprint.

    Binding ``keyed_from`` and ``key_id`` is what stops a downgrade: whoever can write the file
    but not read the key can neither cut the tail and move the head back, nor move
    ``keyed_from`` past the end and rehash the events with plain SHA-256 (no key needed), nor
    clear the key mark, without the seal failing."""
    return mac(key, f"audit head:{seq}:{event_hash}:keyed_from={keyed_from}:key={key_id}")


def legacy_head_seal(key: bytes, seq: int, event_hash: str) -> str:
    """The head's seal as code before December 2026 wrote it: seq and hash only, not the
    chain's metadata. Still proves the head of a keyed chain (its hash is keyed, so moving
    ``keyed_from`` over it changes the hash); verify accepts it only for a keyed head."""
    return mac(key, f"audit head:{seq}:{event_hash}")


def commitment(seed: int, salt: str) -> str:
    """The public commitment to an assignment seed: SHA-256 of "seed:salt" (salt: 32 hex)."""
    return hashlib.sha256(f"{int(seed)}:{salt}".encode("ascii")).hexdigest()


def new_salt() -> str:
    """A fresh salt for ``commitment`` (16 random bytes, hex), so the seed cannot be guessed
    from its commitment by trying small numbers."""
    return secrets.token_hex(16)


def new_seed() -> int:
    """A fresh assignment seed from the operating system's random source (7 bytes, so it fits
    the schema's BIGINT and ``design.MAX_SEED``), for a design whose seed nobody chose: drawn
    here, sealed at the lock, never shown."""
    return int.from_bytes(secrets.token_bytes(7), "big")


def _pad(key: bytes, salt: str) -> int:
    return int(mac(key, f"sealed seed:{salt}")[:16], 16)


def seal_seed(key: bytes, seed: int, salt: str) -> str:
    """``seed`` (0 <= seed < 2**64) encrypted under ``key`` as 16 hex digits: readable only
    with the audit key, i.e. by the unblinding step of the deployment that holds it."""
    if not 0 <= int(seed) < 2**64:
        raise ValueError("a sealed seed must lie in 0 .. 2**64 - 1")
    return f"{int(seed) ^ _pad(key, salt):016x}"


def open_seed(key: bytes, sealed: str, salt: str) -> int:
    """The seed ``seal_seed`` sealed."""
    return int(sealed, 16) ^ _pad(key, salt)
