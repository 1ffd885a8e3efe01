"""Secrets kept encrypted at rest (issue 15, finding 7): delivery targets' signing secrets and enrichment
credentials. Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under the keys in HANDOFF_SECRETS_KEY,
newest first: values are written with the first key and read with any of them, so a key is rotated by putting
the new one first, running `manage.py rotate_secrets`, then dropping the old one (docs/security.md).

A database dump or a read-only SQL role sees only ciphertext; the key lives in the environment of the
processes that send (web and workers), not in the database."""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


def _keys() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.HANDOFF["SECRETS_KEYS"]])


def seal(plain: str) -> str:
    return _keys().encrypt(plain.encode()).decode() if plain else ""


def unseal(token: str) -> str:
    if not token:
        return ""
    try:
        return _keys().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret does not decrypt with any key in HANDOFF_SECRETS_KEY: keep the key it was written "
            "with in the list (after the new one) until `manage.py rotate_secrets` has run."
        ) from None


class SealedTextField(models.TextField):
    """A text column holding a Fernet token; Python code sees the plain value. Empty stays empty."""

    def from_db_value(self, value, expression, connection):
        return value if value is None else unseal(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value if value is None else seal(value)
