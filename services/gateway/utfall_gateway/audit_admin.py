"""`utfall-admin audit verify|prune`: the audit trail's checks and retention, run as the schema's owner
(`UTFALL_DATABASE_URL`). verify exits 1 and names the first broken entry of each broken chain."""

from __future__ import annotations

import argparse
import asyncio
import sys

from utfall_platform.clock import SystemClock
from utfall_platform.db import connect

from . import audit_store
from .domain.audit import retention_cutoff
from .settings import GatewaySettings


async def verify(settings: GatewaySettings) -> int:
    conn = await connect(settings.database_url.get_secret_value())
    try:
        checked, breaks = await audit_store.verify_all(conn)
    finally:
        await conn.close()
    for broken in breaks:
        print(f"BROKEN: chain {broken.chain} entry {broken.seq}: {broken.reason}")
    print(f"{checked} entries checked, {len(breaks)} broken chains")
    return 1 if breaks else 0


async def prune(settings: GatewaySettings, months: int | None) -> int:
    keep = settings.audit_retention_months if months is None else months
    cutoff = retention_cutoff(SystemClock().now(), keep)
    conn = await connect(settings.database_url.get_secret_value())
    try:
        removed = await audit_store.prune(conn, cutoff)
    finally:
        await conn.close()
    print(
        f"{removed} entries before {cutoff.date()} removed ({keep} whole months kept); anchors keep the rest verifiable"
    )
    return 0


def main(argv: list[str] | None = None) -> None:
    root = argparse.ArgumentParser(prog="utfall-admin audit", description=__doc__)
    sub = root.add_subparsers(dest="action", required=True)
    sub.add_parser("verify", help="check every chain of the audit trail")
    pruning = sub.add_parser(
        "prune", help="remove whole months past retention (UTFALL_AUDIT_RETENTION_MONTHS)"
    )
    pruning.add_argument("--keep-months", type=int, default=None)
    args = root.parse_args(argv)
    settings = GatewaySettings()
    if args.action == "verify":
        sys.exit(asyncio.run(verify(settings)))
    sys.exit(asyncio.run(prune(settings, args.keep_months)))


if __name__ == "__main__":
    main()
