"""One HTTP hop to a system outside the product (enrichment vendor, delivery target): what came back, how
fast, and whether trying again could help. Shared by enrichment.py and delivery.py."""

import email.utils
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
from django.utils import timezone

RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_SECONDS = re.compile(r"[0-9]{1,9}")  # ASCII only: str.isdigit() also accepts "²", which int() refuses
MAX_WAIT_SECONDS = 3600


@dataclass(frozen=True)
class Answer:
    status_code: int | None  # None: timeout, refused or dropped connection
    latency_ms: int
    error: str = ""
    retry_after: int | None = None
    body: Any = None  # the parsed JSON body of a 2xx answer, when it has one

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        if self.status_code is None:
            return True
        return self.status_code >= 500 or self.status_code in RETRYABLE_4XX


_client: tuple[int, httpx.Client] | None = None


def _shared_client() -> httpx.Client:
    """One client (connection pool, TLS context) per process: building one per request loads the CA bundle
    each time (~40 ms). Keyed by pid, so a forked worker child never uses its parent's sockets."""
    global _client
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), httpx.Client())
    return _client[1]


def post(url: str, *, content: bytes, headers: dict, timeout: float) -> Answer:
    began = time.perf_counter()
    try:
        response = _shared_client().post(url, content=content, headers=headers, timeout=timeout)
    except httpx.TimeoutException as exc:
        return Answer(None, _ms(began), f"timeout after {timeout:g} s ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return Answer(None, _ms(began), f"{type(exc).__name__}: {exc}"[:500])
    retry_after = _retry_after(response.headers.get("Retry-After"))
    if not 200 <= response.status_code < 300:
        return Answer(
            response.status_code, _ms(began), f"HTTP {response.status_code}: {response.text[:200]}", retry_after
        )
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = None
    return Answer(response.status_code, _ms(began), "", retry_after, body)


def _ms(began: float) -> int:
    return int((time.perf_counter() - began) * 1000)


def _retry_after(value: str | None) -> int | None:
    """Retry-After as seconds (RFC 9110: delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, int((when - timezone.now()).total_seconds()))


def retry_wait_seconds(*, base: float, attempt: int, retry_after: int | None) -> float:
    """Wait before attempt `attempt + 1`: what Retry-After asks, else base × 2^(attempt-1) with ±20% jitter."""
    if retry_after is not None:
        return float(min(retry_after, MAX_WAIT_SECONDS))
    return min(base * 2 ** (attempt - 1) * random.uniform(0.8, 1.2), MAX_WAIT_SECONDS)  # noqa: S311 - jitter
