"""Encryption of provider credentials at rest (Fernet, key derived from the ATOM secret).

Fernet is AES-128-CBC with an HMAC-SHA256 tag, from `cryptography`: authenticated,
so a token made under another key is rejected, never decrypted into garbage. Its
32-byte key comes from the ATOM secret through HKDF-SHA256 with a label of its
own, so this key is independent of every other use of the secret (token
signing) and rotating the secret makes stored credentials unreadable rather
than wrong. `v1` in the label leaves room for a re-keying migration.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from atom_core.errors import Conflict
from atom_core.settings import get_settings

HKDF_INFO = b"atom:provider-credentials:v1"
HKDF_SALT = b"atom:hkdf-salt:v1"  # fixed: the secret itself is the entropy


class CredentialUnreadable(Conflict):
    """A stored credential no longer decrypts: the server's secret key changed."""

    code = "credential_unreadable"


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(text: str) -> str:
    return _fernet(get_settings().secret()).encrypt(text.encode()).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _fernet(get_settings().secret()).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise CredentialUnreadable(
            "a stored credential cannot be read: the server's secret key has changed since it was saved; "
            "set the API key again"
        ) from None
