"""The SSRF guard: outgoing URLs must resolve only to public addresses.

Checked when an endpoint or callback URL is registered and again before every attempt, since
DNS can change in between. Private, loopback, link-local, reserved and multicast addresses are
refused unless they fall inside `LETHE_WEBHOOK_ALLOWED_NETWORKS`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

from app.core.config import get_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeUrl(ValueError):
    """Why a URL may not be called. The message names no address or credential."""


class Unresolvable(UnsafeUrl):
    pass


@lru_cache
def _parse_networks(spec: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(part.strip()) for part in spec.split(",") if part.strip())


def allowed_networks() -> tuple[IPNetwork, ...]:
    return _parse_networks(get_settings().webhook_allowed_networks)


def _category(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified or address.is_reserved:
        return "reserved"
    if address.is_private or not address.is_global:
        return "private"
    return None


def refusal(addresses: Iterable[IPAddress], *, allowed: tuple[IPNetwork, ...]) -> str | None:
    """The category of the first address that is neither public nor explicitly allowed."""
    for address in addresses:
        category = _category(address)
        if category and not any(address in network for network in allowed):
            return category
    return None


def _host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise UnsafeUrl("only http and https URLs can receive webhooks")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeUrl("the URL's port is not valid") from None
    return parts.hostname, port


def resolve(url: str) -> list[IPAddress]:
    host, port = _host_and_port(url)
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Unresolvable("the URL's host does not resolve") from None
    # Strip an IPv6 zone id ("fe80::1%eth0") before parsing.
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_url(url: str) -> None:
    """Raise UnsafeUrl unless every address the URL resolves to may be called."""
    category = refusal(resolve(url), allowed=allowed_networks())
    if category:
        raise UnsafeUrl(
            f"the URL resolves to a {category} address; set LETHE_WEBHOOK_ALLOWED_NETWORKS "
            "to allow it"
        )
