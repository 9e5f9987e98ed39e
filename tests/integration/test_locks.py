"""Advisory locks between projection transactions (``lock_keys``) in a real Postgres: shared
holders of a key run side by side, an exclusive holder waits for them and they for it."""

from __future__ import annotations

import asyncio

from parley_shared.db import Pool, lock_keys


async def test_shared_holders_never_wait_for_each_other(pool: Pool) -> None:
    async with pool.acquire() as first, first.transaction():
        await lock_keys(first, "t", ["conversation-a"], shared=["subject:1"])
        async with pool.acquire() as second, second.transaction():
            # Would wait until the first transaction ends (forever, here) if it conflicted.
            await asyncio.wait_for(
                lock_keys(second, "t", ["conversation-b"], shared=["subject:1"]), 5
            )


async def test_an_exclusive_holder_and_shared_ones_take_turns(pool: Pool) -> None:
    # An erasure waits for a reader of the participant...
    assert await turns(pool, first=([], ["subject:1"]), second=(["subject:1"], [])) == [
        "first",
        "second",
    ]
    # ... a reader for an erasure, also when the erasure asked for the key both ways.
    assert await turns(pool, first=(["subject:1"], ["subject:1"]), second=([], ["subject:1"])) == [
        "first",
        "second",
    ]


Locks = tuple[list[str], list[str]]  # (exclusive, shared)


async def turns(pool: Pool, first: Locks, second: Locks) -> list[str]:
    """Which transaction finished first when the second asks for its locks while the first
    holds its own for half a second."""
    order: list[str] = []
    held = asyncio.Event()

    async def hold(name: str, locks: Locks, after: asyncio.Event | None) -> None:
        if after is not None:
            await after.wait()
        async with pool.acquire() as conn, conn.transaction():
            await lock_keys(conn, "t", locks[0], shared=locks[1])
            if after is None:
                held.set()
                await asyncio.sleep(0.5)
            order.append(name)

    await asyncio.wait_for(
        asyncio.gather(hold("first", first, None), hold("second", second, held)), 10
    )
    return order
