"""Encryption at rest for Google tokens: ``cryptography``'s MultiFernet.

:func:`encrypt`, :func:`decrypt` and :func:`rotate` use ``CREDENTIALS_ENCRYPTION_KEYS``
(env ``CREDENTIALS_ENCRYPTION_KEY``, comma separated): the first key encrypts, every key
decrypts, so keys can be rotated (``manage.py rotate_credentials_key``) without making
stored tokens unreadable. Nothing is hand-rolled beyond choosing the keys. With no key
configured, :func:`development_key` derives one from ``SECRET_KEY`` (HKDF) and a warning
is logged once. Why Fernet, and rotating: the README's "Rotating the encryption key".
"""

from __future__ import annotations

import base64
import functools
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger("agenticpal.credentials")

__all__ = ["InvalidToken", "decrypt", "encrypt", "fernet", "generate_key", "rotate"]

_DEV_KEY_INFO = b"agenticpal credentials encryption (development key)"


def generate_key() -> str:
    """A fresh key for ``CREDENTIALS_ENCRYPTION_KEY``."""
    return Fernet.generate_key().decode()


def development_key(secret_key: str) -> str:
    """The key used when none is configured, derived from ``SECRET_KEY``."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DEV_KEY_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())).decode()


@functools.cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        logger.warning(
            "CREDENTIALS_ENCRYPTION_KEY is not set: Google tokens are encrypted with a key "
            "derived from SECRET_KEY. Set CREDENTIALS_ENCRYPTION_KEY (generate one with "
            "`python manage.py rotate_credentials_key --generate`) in production."
        )
        keys = (development_key(secret_key),)
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.strip()))
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"CREDENTIALS_ENCRYPTION_KEY entry {position} is not a Fernet key (32 url-safe "
                "base64-encoded bytes). Generate one with "
                "`python manage.py rotate_credentials_key --generate`."
            ) from None
    return MultiFernet(fernets)


def fernet() -> MultiFernet:
    """The MultiFernet for the current settings (cached per key list)."""
    keys = tuple(k for k in settings.CREDENTIALS_ENCRYPTION_KEYS if k.strip())
    return _fernet(keys, settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Raises :class:`cryptography.fernet.InvalidToken` when no configured key fits."""
    return fernet().decrypt(ciphertext.encode()).decode()


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the first (current) key."""
    return fernet().rotate(ciphertext.encode()).decode()
