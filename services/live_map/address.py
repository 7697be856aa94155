"""The live map's ``--http`` address: parsing (loopback unless a host is given) and the
loopback check. Apart from ``server`` so that reading the flag does not import aiohttp
(a store without ``--http`` never loads it)."""

from __future__ import annotations

import ipaddress

from tracklayer.services.errors import UserError
from tracklayer.services.rpc.server import parse_host_port


def parse_http_address(text: str, flag: str = "--http") -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` -> (host, port); an empty host is loopback
    (127.0.0.1), never every interface. UserError naming ``flag``."""
    text = text.strip()
    if text.isdigit():
        text = f"127.0.0.1:{text}"
    if text.startswith(":"):
        text = "127.0.0.1" + text
    host, port = parse_host_port(text, flag)
    if not host:
        raise UserError(f"{flag}: expected HOST:PORT, got {text!r}")
    return host, port


def is_loopback(host: str) -> bool:
    """True for a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
