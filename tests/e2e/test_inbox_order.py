"""The inbox's order: conversations by their latest message, paged; by number."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import BOT_SMS, Parley, eventually
from tests.e2e.test_loop import replies_to

ANA, BO, CY = "+15550200101", "+15550200102", "+15550200103"


async def pages(parley: Parley, **params: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = await parley.api(
            "/v1/conversations",
            params={"limit": 1, **params, **({"cursor": cursor} if cursor else {})},
        )
        seen += [c["participant"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


async def test_conversations_by_latest_activity(parley: Parley) -> None:
    for number in (ANA, BO, CY):
        await parley.text(number, "hello")
        await replies_to(parley, number, 1)
    await parley.text(ANA, "me again")
    await replies_to(parley, ANA, 2)

    async def settled() -> list[str] | None:
        order = await pages(parley, order="activity")
        return order if order[:1] == [ANA] else None

    assert await eventually(settled) == [ANA, CY, BO]
    assert await pages(parley) == [CY, BO, ANA]  # by when they opened
    assert await pages(parley, our_number=BOT_SMS, order="activity") == [ANA, CY, BO]
    assert await pages(parley, our_number="whatsapp:+15550000000") == []

    opened_cursor = (await parley.api("/v1/conversations", params={"limit": 1}))["next_cursor"]
    mixed = await parley.conversation.get(
        "/v1/conversations", params={"order": "activity", "cursor": opened_cursor}
    )
    assert mixed.status_code == 422
