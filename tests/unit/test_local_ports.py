"""The local stack's ports: outside the range outgoing connections draw from, and never the same twice."""

from __future__ import annotations

import socket

from utfall_platform.local.paths import _ephemeral_range, free_port
from utfall_platform.local.stack import _answered_by


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low, _ = _ephemeral_range()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= port < low for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_readiness_must_come_from_the_service_asked() -> None:
    assert _answered_by(b'{"status": "ready", "service": "contracts", "checks": {}}') == "contracts"
    assert _answered_by(b'{"status": "ready", "checks": {}}') is None
    assert _answered_by(b"<html>not ours</html>") is None
