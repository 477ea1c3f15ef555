"""Where Utfall may send a request on someone else's word: a webhook URL a finance system registered.

A registered URL must not reach inside the network (server-side request forgery): it must be https and every
address its host resolves to must be global, unless a setting allows private addresses (a test receiver on
127.0.0.1, or an installation whose finance system sits in its own network). The check runs when the URL is
registered and again before each round of deliveries, since what a name resolves to may change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_SECONDS = 5.0


def address_refusal(address: IpAddress, *, allow_private: bool) -> str | None:
    """Why a request may not go to this address (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_multicast or address.is_unspecified:
        return f"{address} is not a host address"
    if address.is_global or allow_private:
        return None
    kind = (
        "a loopback"
        if address.is_loopback
        else "a link-local"
        if address.is_link_local
        else "a private"
        if address.is_private
        else "a reserved"
    )
    return f"{address} is {kind} address: webhooks go to public addresses only"


def url_refusal(url: str) -> str | None:
    """Why the URL itself is refused, before any lookup: https, a host, no credentials in it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme != "https":
        return "webhook URLs must be https"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "the URL must not carry credentials (the signature authenticates deliveries)"
    if port == 0:
        return "port 0 is not a port"
    return None


async def destination_refusal(url: str, *, allow_private: bool) -> str | None:
    """Why a request to this URL may not be sent (None: it may), resolving its host now."""
    refusal = url_refusal(url)
    if refusal is not None:
        return refusal
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        addresses: list[IpAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM),
                timeout=RESOLVE_SECONDS,
            )
        except TimeoutError:
            return f"{host} did not resolve within {RESOLVE_SECONDS:g} s"
        except OSError as exc:
            return f"{host} does not resolve: {exc.strerror or exc}"
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        refusal = address_refusal(address, allow_private=allow_private)
        if refusal is not None:
            return f"{host}: {refusal}" if str(address) != host else refusal
    return None
