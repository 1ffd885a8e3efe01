"""Test settings: the real PostgreSQL and Redis of this machine (README: Tests)."""

import os

os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/handoff")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", "handoff-test")
# Delivery retries wait this × 2^(n-1) in tests (30 s in production), so the real worker retries in moments.
os.environ.setdefault("HANDOFF_DELIVERY_RETRY_BASE_SECONDS", "0.05")
os.environ.setdefault("HANDOFF_ENRICHMENT_RETRY_BASE_SECONDS", "0.05")
# A fixed key for the test database's encrypted secrets (never a production key).
os.environ.setdefault("HANDOFF_SECRETS_KEY", "dGVzdC1vbmx5LXNlY3JldHMta2V5LTAxMjM0NTY3ODk=")
# The fake CRMs and enrichment vendors are real servers on loopback; tests of the refusal set it to nothing.
os.environ.setdefault("HANDOFF_OUTBOUND_ALLOW", "127.0.0.0/8")

from config.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# A connection per request or task, unless a test's subprocess asks for production's reuse.
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("TEST_CONN_MAX_AGE", "0"))  # noqa: F405
