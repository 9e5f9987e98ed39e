"""The console's live stream: activity on a tenant's numbers reaches its streams as the
projection commits it, and nobody else's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.e2e.conftest import BOT_SMS, Parley
from tests.e2e.test_tenants import answered, as_token, call


async def next_activity(lines: Any, timeout_s: float) -> list[str] | None:
    """The numbers of the next ``activity`` event, or None if none comes in time."""

    async def read() -> list[str]:
        event = ""
        async for line in lines:
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "activity":
                return list(json.loads(line.split(":", 1)[1])["numbers"])
        raise AssertionError("the stream ended")

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        return None


async def test_a_stream_hears_its_own_numbers_only(parley: Parley) -> None:
    admin = parley.conversation
    mine = await call(admin, "POST", "/v1/tenants", json={"name": "Mine", "numbers": [BOT_SMS]})
    other = await call(
        admin, "POST", "/v1/tenants", json={"name": "Other", "numbers": ["+15557650001"]}
    )
    mine_token = await call(
        admin, "POST", f"/v1/tenants/{mine['id']}/tokens", json={"scope": "read"}
    )
    other_token = await call(
        admin, "POST", f"/v1/tenants/{other['id']}/tokens", json={"scope": "read"}
    )
    async with (
        as_token(admin, mine_token["token"]) as as_mine,
        as_token(admin, other_token["token"]) as as_other,
    ):
        await answered(as_mine, "/v1/me")
        await answered(as_other, "/v1/me")
        async with (
            as_mine.stream("GET", "/v1/stream", timeout=httpx.Timeout(30, read=None)) as ours,
            as_other.stream("GET", "/v1/stream", timeout=httpx.Timeout(30, read=None)) as theirs,
        ):
            assert ours.status_code == 200
            assert ours.headers["content-type"].startswith("text/event-stream")
            our_lines, their_lines = ours.aiter_lines(), theirs.aiter_lines()
            # The first line comes once the stream listens: nothing after it is missed.
            assert await anext(our_lines) == "retry: 2000"
            assert await anext(their_lines) == "retry: 2000"
            await parley.text("+15550180001", "is anyone there?")
            assert await next_activity(our_lines, 10) == [BOT_SMS]
            assert await next_activity(their_lines, 1.5) is None

    async with as_token(admin, "pt_nobody") as stranger:
        assert (await stranger.get("/v1/stream")).status_code == 401
