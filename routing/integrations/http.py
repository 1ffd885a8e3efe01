"""One HTTP hop to a system outside the product (enrichment vendor, delivery target): what came back, how
fast, and whether trying again could help. Shared by enrichment.py and delivery.py."""

import email.utils
import http
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from django.utils import timezone

from routing.integrations.addresses import HostUnresolved, OutboundRefused, destination_for

RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_SECONDS = re.compile(r"[0-9]{1,9}")  # ASCII only: str.isdigit() also accepts "²", which int() refuses
MAX_WAIT_SECONDS = 3600
# An answer is read up to this size (an enrichment answer is a few hundred bytes; a delivery's is ignored).
MAX_ANSWER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    status_code: int | None  # None: timeout, refused or dropped connection
    latency_ms: int
    error: str = ""
    retry_after: int | None = None
    body: Any = None  # the parsed JSON body of a 2xx answer, when it has one
    refused: bool = False  # never sent: the URL leads to an address requests may not go to (addresses.py)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        if self.refused:
            return False  # the same URL is refused again; a person must change it or the allow-list
        if self.status_code is None:
            return True
        return self.status_code >= 500 or self.status_code in RETRYABLE_4XX


_client: tuple[int, httpx.Client] | None = None


def _shared_client() -> httpx.Client:
    """One client (connection pool, TLS context) per process: building one per request loads the CA bundle
    each time (~40 ms). Keyed by pid, so a forked worker child never uses its parent's sockets."""
    global _client
    if _client is None or _client[0] != os.getpid():
        # Redirects are not followed: the Location could name an address the check below would refuse.
        _client = (os.getpid(), httpx.Client(follow_redirects=False))
    return _client[1]


def post(url: str, *, content: bytes, headers: dict, timeout: float, reason_of=None) -> Answer:
    """POST to `url` after checking where it resolves now, connected to the checked address (addresses.py).
    `reason_of(raw body)`, for a far end whose error answers have a known shape (PagerDuty, Slack), picks the
    reason out of an error answer to show; None shows none (_error_summary)."""
    began = time.perf_counter()
    try:
        where = destination_for(url)
    except OutboundRefused as exc:
        return Answer(None, _ms(began), f"refused: {exc}"[:500], refused=True)
    except HostUnresolved as exc:
        return Answer(None, _ms(began), str(exc)[:500])
    extensions = {"sni_hostname": where.sni_hostname} if where.sni_hostname else {}
    try:
        response, raw, complete = _send(where, content, {**headers, "Host": where.host_header}, timeout, extensions)
    except httpx.TimeoutException as exc:
        return Answer(None, _ms(began), f"timeout after {timeout:g} s ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return Answer(None, _ms(began), f"{type(exc).__name__}: {exc}"[:500])
    retry_after = _retry_after(response.headers.get("Retry-After"))
    if not 200 <= response.status_code < 300:
        reason = reason_of(raw) if reason_of is not None and complete else None
        summary = _error_summary(response.status_code, raw, complete, reason=reason)
        return Answer(response.status_code, _ms(began), summary, retry_after)
    try:
        body = orjson.loads(raw) if raw and complete else None
    except orjson.JSONDecodeError:
        body = None
    return Answer(response.status_code, _ms(began), "", retry_after, body)


def get_document(url: str, *, timeout: float) -> bytes:
    """GET a document (a calendar feed) after the same address checks as `post`, up to MAX_ANSWER_BYTES.
    ValueError says why nothing usable came back."""
    try:
        where = destination_for(url)
    except (OutboundRefused, HostUnresolved) as exc:
        raise ValueError(f"refused: {exc}"[:500]) from None
    extensions = {"sni_hostname": where.sni_hostname} if where.sni_hostname else {}
    try:
        response, raw, complete = _send(where, b"", {"Host": where.host_header}, timeout, extensions, method="GET")
    except httpx.TimeoutException:
        raise ValueError(f"no answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}"[:500]) from None
    if not 200 <= response.status_code < 300:
        raise ValueError(_error_summary(response.status_code, raw, complete))
    if not complete:
        raise ValueError(f"the document is larger than {MAX_ANSWER_BYTES // 1024} KB")
    return raw


def _send(where, content: bytes, headers: dict, timeout: float, extensions: dict, method: str = "POST"):
    """Try the checked addresses in order, moving on only when one cannot be connected to (an AAAA record on
    a host without IPv6, say), as a plain connect would; never to an address that was not checked."""
    for position, url in enumerate(where.urls, 1):
        try:
            with _shared_client().stream(
                method, url, content=content, headers=headers, timeout=timeout, extensions=extensions
            ) as response:
                return (response, *_read_capped(response))
        except httpx.ConnectError:
            if position == len(where.urls):
                raise
    raise AssertionError("destination_for returns at least one address")  # pragma: no cover


def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    """The answer's bytes up to MAX_ANSWER_BYTES, and whether that was all of it."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return b"".join(chunks)[:MAX_ANSWER_BYTES], False
    return b"".join(chunks), True


def _error_summary(status_code: int, raw: bytes, complete: bool, *, reason: str | None = None) -> str:
    """What people see of an error answer: its status, never its body. The body is whatever the far end
    chose to send (an internal page, if the URL ever reached one); the receipt says how large it was. Only a
    `reason` the caller picked out of a known answer shape is shown, cut to 300 characters."""
    try:
        phrase = f" {http.HTTPStatus(status_code).phrase}"
    except ValueError:
        phrase = ""
    if reason:
        return f"HTTP {status_code}{phrase}: {reason[:300]}"
    size = f"{len(raw):,} bytes" if complete else f"over {MAX_ANSWER_BYTES:,} bytes"
    return f"HTTP {status_code}{phrase} (answer of {size} not shown)"


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
