"""Consumer positions (`<schema>.consumer_positions`, the platform's table beside the outbox): where each
transactional consumer goes on, written in the same transaction as what it consumed. A service that rebuilds
a projection from a topic resets them through these two functions, never by writing the table itself."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg


async def forget_positions(conn: asyncpg.Connection, schema: str, consumer: str) -> None:
    """The consumer starts again from where Kafka's group says, or from the beginning."""
    await conn.execute(f'DELETE FROM "{schema}".consumer_positions WHERE consumer = $1', consumer)


async def set_positions(
    conn: asyncpg.Connection, schema: str, consumer: str, topic: str, next_offsets: Mapping[int, int]
) -> None:
    """The consumer goes on at these offsets of `topic` (partition -> next offset), replacing what it had."""
    await conn.execute(
        f'DELETE FROM "{schema}".consumer_positions WHERE consumer = $1 AND topic = $2', consumer, topic
    )
    await conn.execute(
        f'INSERT INTO "{schema}".consumer_positions (consumer, topic, partition, next_offset) '
        "SELECT $1, $2, p, o FROM unnest($3::int[], $4::bigint[]) AS u(p, o)",
        consumer,
        topic,
        list(next_offsets),
        list(next_offsets.values()),
    )
