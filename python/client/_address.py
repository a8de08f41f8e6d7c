"""How an address is written in messages: ``host:port``, with an IPv6
address in brackets (``[::1]:8888``). The one writer of it on the Python
side, as ``protocol::host_port`` is on the Rust side."""

from __future__ import annotations


def host_port(host: object, port: object) -> str:
    """``host:port``, brackets around a host that contains ``:`` (IPv6)."""
    text = str(host)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"
