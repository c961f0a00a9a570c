"""API keys of the HTTP service, kept in the gallery file (table `api_keys`).

    token, key = create_key(store, "write", label="door kiosk")   # show `token` once; it is not stored
    check_key(store, token)                                       # ApiKey, or None (unknown or revoked)
    revoke_key(store, key.id)

A key is `ck_` followed by 32 random bytes from the operating system's CSPRNG
(`secrets`), URL-safe base64. Only its SHA-256 is stored. A fast hash is enough
here, unlike for passwords: slow, salted hashes (bcrypt, argon2) exist to make
guessing *low-entropy* secrets expensive, but a key with 256 random bits cannot
be guessed however fast the hash is, and SHA-256 has no known preimage attack.
So a copy of the gallery file gives nobody a usable key, and a key is checked
with one indexed lookup of its hash (no per-key salt is needed, and none would
allow that lookup).

Roles: "read" may verify, identify and list; "write" may also enroll, rename
and delete. A revoked key stays listed (with the time it was revoked) and is
refused from the next request on.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from ...errors import GalleryError, SettingsError
from ...runtime.clock import utc_timestamp
from .store import GalleryStore, inserted_id

Role = Literal["read", "write"]
ROLES: tuple[Role, ...] = ("read", "write")
KEY_PREFIX = "ck_"
#: Random bytes per key: 256 bits.
KEY_BYTES = 32
MAX_LABEL = 200


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without the key itself (only its hash is kept)."""

    id: int
    role: Role
    label: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, role: Role) -> bool:
        """Whether this key may do what `role` may (write includes read)."""
        return self.active and ROLES.index(self.role) >= ROLES.index(role)

    def to_dict(self) -> dict:
        return {"id": self.id, "role": self.role, "label": self.label, "created_at": self.created_at,
                "revoked_at": self.revoked_at, "active": self.active}


def hash_key(token: str) -> str:
    """The stored form of a key: hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()



def _row_to_key(row: tuple) -> ApiKey:
    return ApiKey(id=int(row[0]), role=row[1], label=row[2], created_at=row[3], revoked_at=row[4])


_COLUMNS = "id, role, label, created_at, revoked_at"


def create_key(store: GalleryStore, role: Role, *, label: str = "") -> tuple[str, ApiKey]:
    """A new key with `role`: (the key, to hand to its user once; what is stored about it)."""
    if role not in ROLES:
        raise SettingsError(f"role must be one of {ROLES}, got {role!r}")
    label = " ".join(str(label).split())
    if len(label) > MAX_LABEL:
        raise SettingsError(f"a key's label is limited to {MAX_LABEL} characters")
    token = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
    with store.write() as tx:
        cur = tx.execute("INSERT INTO api_keys (key_hash, role, label, created_at) VALUES (?, ?, ?, ?)",
                         (hash_key(token), role, label, utc_timestamp()))
        key_id = inserted_id(cur)
        row = tx.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return token, _row_to_key(row)


def list_keys(store: GalleryStore, *, include_revoked: bool = True) -> list[ApiKey]:
    query = f"SELECT {_COLUMNS} FROM api_keys"
    if not include_revoked:
        query += " WHERE revoked_at IS NULL"
    return [_row_to_key(r) for r in store.connection().execute(query + " ORDER BY id")]


def get_key(store: GalleryStore, key_id: int) -> ApiKey:
    row = store.connection().execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    if row is None:
        raise GalleryError(f"no API key with id {key_id} in {store.path}; `cnnkit serve keys list` shows them")
    return _row_to_key(row)


def revoke_key(store: GalleryStore, key_id: int) -> ApiKey:
    """Revoke a key (from its next use on). Revoking a revoked key changes nothing."""
    with store.write() as tx:
        row = tx.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise GalleryError(f"no API key with id {key_id} in {store.path}; `cnnkit serve keys list` shows them")
        if row[4] is None:
            tx.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (utc_timestamp(), key_id))
    return get_key(store, key_id)


def check_key(store: GalleryStore, token: str | None) -> ApiKey | None:
    """The active key `token` is, or None (missing, malformed, unknown or revoked)."""
    if not token or not token.startswith(KEY_PREFIX) or len(token) > 200:
        return None
    digest = hash_key(token)
    row = store.connection().execute(
        f"SELECT {_COLUMNS}, key_hash FROM api_keys WHERE key_hash = ?", (digest,)).fetchone()
    # The lookup is by hash, so timing reveals nothing about the key; compare anyway in constant time.
    if row is None or not hmac.compare_digest(row[5], digest) or row[4] is not None:
        return None
    return _row_to_key(row[:5])
