"""How an outbound webhook is signed: the secrets, the signatures and the headers that carry them. Pure
functions (no database); routing/integrations/outbox.py picks the scheme of each delivery target.

- Standard Webhooks (https://www.standardwebhooks.com/), the default: `webhook-id`, `webhook-timestamp` and
  `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`. The secret has the form
  `whsec_<base64>` and the HMAC key is the decoded part, so the official libraries (`standardwebhooks` for
  Python, JavaScript, Go, Ruby, …) verify it. While a secret is being replaced, the request carries one
  signature per secret, space-separated; a receiver holding either one accepts it.
- Legacy, for receivers written before: `X-Handoff-Event`, `Idempotency-Key`, `X-Handoff-Timestamp` and
  `X-Handoff-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`, keyed with the secret string's UTF-8
  bytes exactly as it was typed. One signature only (the format has no room for a second).

A secret set before Standard Webhooks is any string. It still works for the standard scheme: its key is its
UTF-8 bytes, and the receiver's secret is `whsec_` + base64 of those bytes (`whsec_form`)."""

import base64
import binascii
import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # generated secrets; Standard Webhooks asks for 24 to 64 random bytes
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64

ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"

EVENT_HEADER = "X-Handoff-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"
TIMESTAMP_HEADER = "X-Handoff-Timestamp"
SIGNATURE_HEADER = "X-Handoff-Signature"


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_problem(secret: str) -> str | None:
    """Why a secret typed for the standard scheme cannot be used, or None. Only `whsec_<base64>` secrets are
    taken: anything else would not verify in the receivers' libraries, which base64-decode it."""
    if not secret.startswith(SECRET_PREFIX):
        return (
            f"A Standard Webhooks secret starts with '{SECRET_PREFIX}' followed by base64 (leave the field blank "
            "to have one generated); a secret in any other form only works with the legacy scheme."
        )
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return f"The part after '{SECRET_PREFIX}' is not valid base64 (A–Z, a–z, 0–9, +, / and = padding)."
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        return (
            f"The secret decodes to {len(key)} bytes; Standard Webhooks asks for {MIN_SECRET_BYTES} to "
            f"{MAX_SECRET_BYTES} random bytes (leave the field blank to have one generated)."
        )
    return None


def signing_key(secret: str) -> bytes:
    """The HMAC key of the standard scheme: the decoded part of a `whsec_` secret, or the UTF-8 bytes of a
    secret set before (whose receiver-side form is `whsec_form(secret)`)."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: an old free-form secret that happens to start like one
    return secret.encode()


def whsec_form(secret: str) -> str:
    """The secret as a Standard Webhooks receiver holds it: the same key, written `whsec_<base64>`."""
    return SECRET_PREFIX + base64.b64encode(signing_key(secret)).decode()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(signing_key(secret), signed, hashlib.sha256).digest()).decode()


def standard_headers(*, msg_id: str, timestamp: int, body: bytes, secrets: list[str]) -> dict[str, str]:
    """Standard Webhooks headers, with one signature per secret (the current one first)."""
    return {
        ID_HEADER: msg_id,
        STANDARD_TIMESTAMP_HEADER: str(timestamp),
        STANDARD_SIGNATURE_HEADER: " ".join(standard_signature(s, msg_id, timestamp, body) for s in secrets),
    }


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Legacy: HMAC-SHA256 over "<timestamp>.<raw body>", hex, as `v1=<hex>` (the scheme Stripe uses)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def legacy_headers(*, event_type: str, msg_id: str, timestamp: int, body: bytes, secret: str) -> dict[str, str]:
    return {
        EVENT_HEADER: event_type,
        IDEMPOTENCY_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def verify(secret: str, headers, body: bytes, *, tolerance_seconds: int = 300, now: float | None = None) -> bool:
    """What a legacy receiver does: constant-time compare, and refuse stale timestamps (replayed captures)."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
    except (KeyError, TypeError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), headers.get(SIGNATURE_HEADER, ""))
