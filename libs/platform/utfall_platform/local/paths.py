"""Where the local stack keeps its files: jars in a cache, data in a state folder (both git-ignored)."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    env = os.environ.get("UTFALL_REPO_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "deploy" / "local" / "kafka" / "pom.xml").exists():
            return parent
    return Path.cwd()


def cache_dir() -> Path:
    path = Path(os.environ.get("UTFALL_CACHE_DIR", repo_root() / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_dir() -> Path:
    path = Path(os.environ.get("UTFALL_STATE_DIR", repo_root() / ".state"))
    path.mkdir(parents=True, exist_ok=True)
    return path


_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port to listen on, chosen below the kernel's ephemeral range and never handed out twice by this
    process. A port from `bind(0)` comes from the ephemeral range, where any outgoing connection (Kafka
    and PostgreSQL clients open many) can take it between our check and the service's bind; and two
    closed `bind(0)` sockets can return the same number to two services."""
    import random
    import socket

    low, _ = _ephemeral_range()
    candidates = list(range(max(1024, low - 12000), low))
    random.shuffle(candidates)
    for port in candidates:
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def write_secret(path: Path, text: str) -> None:
    """Write a file only its owner can read, from the first byte on (no world-readable window)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def maven_copy_dependencies(pom: Path, into: Path, what: str) -> None:
    """Copy a pom's runtime dependencies from Maven Central into a folder (created afresh)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("mvn") is None:
        raise RuntimeError(f"Maven (mvn) is needed to fetch {what} from Maven Central")
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    print(f"fetching {what} from Maven Central into {into} ...", file=sys.stderr, flush=True)
    subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(pom),
            "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={into}",
        ],
        check=True,
    )
