"""Where outbound requests may go (issue 15, finding 6: SSRF). Delivery target and enrichment URLs are typed
by admins, and a URL naming an address inside the network (the database, a cloud metadata service, an admin
port on loopback) would let whoever edits one make the workers call it, and read part of the answer.

Each request resolves its host when it is sent (not only when the URL is saved), checks every address the
name resolves to, and connects to the checked address, with the name kept in the Host header and in TLS
(SNI and certificate check): a name that resolves to a public address when checked and to a private one a
moment later (DNS rebinding) is never asked again. HANDOFF_OUTBOUND_ALLOW lists the networks an on-premises
deployment allows (its own CRM on 10.0.0.0/8, say); nothing else that is not public is reached."""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Named so the refusal says what was asked for; all of them are also link-local, private or shared space.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)


class OutboundRefused(Exception):
    """The URL leads somewhere requests may not go; the message says where and why (shown to ops)."""


class HostUnresolved(Exception):
    """The name does not resolve now (may be transient: retried like a refused connection)."""


@dataclass(frozen=True)
class Destination:
    urls: tuple[str, ...]  # the URL with each checked address in place of the name, in resolver order
    host_header: str  # the name (and port) as the URL gave them
    sni_hostname: str | None  # for https to a name: TLS is checked against the name, not the address


def refusal_reason(address: Address) -> str | None:
    """Why a request may not go to `address`, or None when it may (public, or in HANDOFF_OUTBOUND_ALLOW)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    if any(address in network for network in settings.HANDOFF["OUTBOUND_ALLOW"]):
        return None
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for kind, flag in (
        ("the unspecified address", address.is_unspecified),
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a private address", address.is_private),
        ("a multicast address", address.is_multicast),
        ("a reserved address", address.is_reserved),
        ("not a public address", not address.is_global),
    ):
        if flag:
            return kind
    return None


def _split(url: str):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise OutboundRefused(f"only http and https URLs are sent to, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise OutboundRefused("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OutboundRefused("the URL's port is not a number from 1 to 65535") from None
    return parts, port


def _resolve(host: str, port: int) -> list[Address]:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [literal]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostUnresolved(f"{host} does not resolve ({exc})") from None
    addresses: list[Address] = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])  # drop an IPv6 scope id
        if address not in addresses:
            addresses.append(address)
    return addresses


def _refuse_if_any_closed(host: str, addresses: list[Address]) -> None:
    for address in addresses:  # every one: a name with one public and one private address is refused
        why = refusal_reason(address)
        if why:
            raise OutboundRefused(
                f"{host} resolves to {address}, {why}; outbound requests go to public addresses only "
                "(HANDOFF_OUTBOUND_ALLOW lists the networks a deployment allows)"
            )


def destination_for(url: str) -> Destination:
    """Resolve and check `url` now; the Destination connects to the address that was checked."""
    parts, port = _split(url)
    host = parts.hostname
    addresses = _resolve(host, port)
    _refuse_if_any_closed(host, addresses)
    pinned = tuple(
        urlunsplit((parts.scheme, f"{_literal(address)}:{port}", parts.path, parts.query, "")) for address in addresses
    )
    host_header = parts.netloc.rpartition("@")[2]  # without any user:password@
    is_name = not _is_literal(host)
    return Destination(pinned, host_header, host if parts.scheme == "https" and is_name else None)


def _literal(address: Address) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def url_problem(url: str) -> str | None:
    """For forms: why a URL will be refused, judged now. A name that does not resolve yet is let through
    (it is checked again at every send)."""
    try:
        parts, port = _split(url)
        _refuse_if_any_closed(parts.hostname, _resolve(parts.hostname, port))
    except OutboundRefused as exc:
        return f"Refused: {exc}."
    except HostUnresolved:
        return None
    return None
