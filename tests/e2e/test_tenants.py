"""Tenants: each business reaches only its own numbers' conversations, settings and figures,
with tokens that are scoped, hashed at rest and revocable; the admin token manages them."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from parley_shared.db import create_pool
from tests.e2e.conftest import BOT_SMS, Parley, eventually
from tests.e2e.test_loop import replies_to
from tests.helpers import inbound_params

B_NUMBER = "+15557650000"  # reached through B's Messaging Service only
B_SERVICE = "MG" + "b" * 32
ALICE = "+15550170001"  # writes to A
BOB = "+15550170002"  # writes to B


def as_token(client: httpx.AsyncClient, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=str(client.base_url), timeout=20, headers={"Authorization": f"Bearer {token}"}
    )


async def call(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    response = await client.request(method, path, **kwargs)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def answered(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """The first answer that is not a 401: a new token works once the service read it."""

    async def ready() -> httpx.Response | None:
        response = await client.get(path)
        return response if response.status_code != 401 else None

    return await eventually(ready)


async def status_of(request: Callable[[], Awaitable[httpx.Response]]) -> int:
    return (await request()).status_code


async def test_a_tenant_reaches_only_what_it_owns(parley: Parley) -> None:
    admin = parley.conversation
    a = await call(admin, "POST", "/v1/tenants", json={"name": "Acme", "numbers": [BOT_SMS]})
    b = await call(
        admin, "POST", "/v1/tenants", json={"name": "Bravo", "messaging_services": [B_SERVICE]}
    )
    # A number belongs to one tenant at most (either form of it).
    taken = await admin.post(
        "/v1/tenants", json={"name": "Copycat", "numbers": [f"whatsapp:{BOT_SMS}"]}
    )
    assert taken.status_code == 409 and "Acme" in taken.json()["detail"]

    a_write = await call(
        admin, "POST", f"/v1/tenants/{a['id']}/tokens", json={"scope": "write", "label": "ops"}
    )
    a_read = await call(admin, "POST", f"/v1/tenants/{a['id']}/tokens", json={"scope": "read"})
    b_write = await call(admin, "POST", f"/v1/tenants/{b['id']}/tokens", json={"scope": "write"})
    assert (
        a_write["token"].startswith("pt_")
        and "token" not in (await call(admin, "GET", f"/v1/tenants/{a['id']}/tokens"))[0]
    )

    await parley.text(ALICE, "hello from Alice")
    await parley.post_inbound(
        inbound_params(From=BOB, To=B_NUMBER, Body="hello from Bob", MessagingServiceSid=B_SERVICE)
    )
    await replies_to(parley, ALICE, 1)
    await replies_to(parley, BOB, 1)

    pool = await create_pool(parley.database)
    try:
        # Only digests are kept: no table holds a token.
        stored = await pool.fetch("SELECT digest FROM conversation_tokens")
        assert {r["digest"] for r in stored} == {
            hashlib.sha256(t["token"].encode()).hexdigest() for t in (a_write, a_read, b_write)
        }
    finally:
        await pool.close()

    async with (
        as_token(parley.conversation, a_write["token"]) as conv_a,
        as_token(parley.conversation, a_read["token"]) as conv_a_read,
        as_token(parley.conversation, b_write["token"]) as conv_b,
        as_token(parley.analytics, a_write["token"]) as stats_a,
        as_token(parley.analytics, b_write["token"]) as stats_b,
        as_token(parley.ai or parley.conversation, a_write["token"]) as ai_a,
        as_token(parley.ai or parley.conversation, a_read["token"]) as ai_a_read,
        as_token(parley.sender, a_write["token"]) as sender_a,
    ):
        me = (await answered(conv_a, "/v1/me")).json()
        assert (me["scope"], me["tenant"]["name"]) == ("write", "Acme")

        async def participants(client: httpx.AsyncClient) -> set[str] | None:
            page = await call(client, "GET", "/v1/conversations")
            return {c["participant"] for c in page["items"]} or None

        assert await eventually(lambda: participants(conv_a)) == {ALICE}
        # B's number is B's through its Messaging Service, seen on the inbound message.
        assert await eventually(lambda: participants(conv_b)) == {BOB}
        assert {ALICE, BOB} <= (await participants(admin) or set())
        [bobs] = (await call(conv_b, "GET", "/v1/conversations"))["items"]
        [alices] = (await call(conv_a, "GET", "/v1/conversations"))["items"]

        # Another tenant's conversation does not exist, for reading or changing.
        theirs = f"/v1/conversations/{bobs['id']}"
        assert await status_of(lambda: conv_a.get(theirs)) == 404
        assert await status_of(lambda: conv_a.get(f"{theirs}/messages")) == 404
        assert await status_of(lambda: conv_a.post(f"{theirs}/close")) == 404
        assert (
            await status_of(lambda: conv_a.post(f"{theirs}/takeover", json={"agent": "x"})) == 404
        )
        sent = conv_a.post(f"{theirs}/messages", json={"agent": "x", "body": "hi"})
        assert (await sent).status_code == 404
        # A read token reads, and may not change anything.
        mine = f"/v1/conversations/{alices['id']}"
        assert await status_of(lambda: conv_a_read.get(f"{mine}/messages")) == 200
        assert await status_of(lambda: conv_a_read.post(f"{mine}/close")) == 403
        assert (await call(conv_a, "POST", f"{mine}/close"))["state"] == "closed"

        # Tenants are the admin's; a tenant's write token manages only its own tokens.
        assert await status_of(lambda: conv_a.get("/v1/tenants")) == 403
        assert await status_of(lambda: conv_a.post("/v1/tenants", json={"name": "Mine"})) == 403
        other = conv_a.post(f"/v1/tenants/{b['id']}/tokens", json={"scope": "write"})
        assert (await other).status_code == 404
        spare = await call(conv_a, "POST", f"/v1/tenants/{a['id']}/tokens", json={"scope": "read"})
        assert spare["tenant_id"] == a["id"]

        # AI settings: only its own numbers, changed only with a write token.
        await answered(ai_a, "/v1/ai-settings")
        assert [s["number"] for s in await call(ai_a, "GET", "/v1/ai-settings")] == [BOT_SMS]
        assert await status_of(lambda: ai_a.get(f"/v1/numbers/{B_NUMBER}/ai-settings")) == 404
        change = {"changed_by": "Ana", "model": "gpt-acme"}
        put_b = ai_a.put(f"/v1/numbers/{B_NUMBER}/ai-settings", json=change)
        assert (await put_b).status_code == 404
        put_read = ai_a_read.put(f"/v1/numbers/{BOT_SMS}/ai-settings", json=change)
        assert (await answered(ai_a_read, "/v1/ai-settings")).status_code == 200
        assert (await put_read).status_code == 403
        mine_now = await call(ai_a, "PUT", f"/v1/numbers/{BOT_SMS}/ai-settings", json=change)
        assert mine_now["effective"]["model"] == "gpt-acme"

        # Analytics: each tenant's figures are its own numbers' only.
        await answered(stats_a, "/v1/stats")

        async def inbound(client: httpx.AsyncClient, **params: str) -> int | None:
            figures = await call(client, "GET", "/v1/stats", params=params)
            return int(figures["messages"]["inbound"]) or None

        assert await eventually(lambda: inbound(stats_a)) == 1
        assert await eventually(lambda: inbound(stats_b)) == 1
        assert await eventually(lambda: inbound(parley.analytics)) == 2
        assert await inbound(stats_a, our_number=B_NUMBER) is None
        assert (await call(stats_a, "GET", "/v1/stats"))["participants"] == 1

        # Breakdowns: per number and per tenant for the admin; a tenant sees its own row.
        def rows(figures: dict[str, Any]) -> dict[str, tuple[int, int]]:
            return {
                r["name"] or r["key"]: (r["inbound"], r["participants"]) for r in figures["rows"]
            }

        by_number = await call(parley.analytics, "GET", "/v1/breakdown")
        assert rows(by_number) == {BOT_SMS: (1, 1), B_NUMBER: (1, 1)}
        by_tenant = await call(parley.analytics, "GET", "/v1/breakdown", params={"by": "tenant"})
        assert rows(by_tenant) == {"Acme": (1, 1), "Bravo": (1, 1), "unassigned": (0, 0)}
        assert [r["numbers"] for r in by_tenant["rows"]][:2] == [[BOT_SMS], [B_NUMBER]]
        own = await call(stats_a, "GET", "/v1/breakdown", params={"by": "tenant"})
        assert rows(own) == {"Acme": (1, 1)}
        assert rows(await call(stats_a, "GET", "/v1/breakdown")) == {BOT_SMS: (1, 1)}

        # The Twilio check shows a tenant its own numbers only.
        parley.twilio.account.add_number(BOT_SMS, None)
        parley.twilio.account.add_number(B_NUMBER, None)
        report = (await answered(sender_a, "/v1/twilio/check")).json()
        assert [f["subject"] for f in report["findings"]] == [f"number {BOT_SMS}"]
        full = await call(parley.sender, "GET", "/v1/twilio/check")
        assert len(full["findings"]) == 2

        # Revoked: refused everywhere once read from the log.
        await call(admin, "DELETE", f"/v1/tenants/{a['id']}/tokens/{a_read['id']}")

        async def refused() -> bool:
            return (await ai_a_read.get("/v1/ai-settings")).status_code == 401

        assert await eventually(refused)
        assert await status_of(lambda: conv_a_read.get("/v1/me")) == 401
        assert await status_of(lambda: conv_a.get("/v1/me")) == 200

    async with as_token(parley.conversation, "pt_made-up") as stranger:
        assert await status_of(lambda: stranger.get("/v1/conversations")) == 401
