"""The sender through Telnyx (its sandbox, on the official SDK's normal path): a reply to a
Telnyx message goes out through Telnyx once, even when the attempt that took it timed out,
because every attempt carries the reply's Idempotency-Key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from parley_dev.serve import serving
from parley_dev.telnyx_sandbox import TelnyxSandbox, create_app
from parley_sender import tables as sender_tables
from parley_sender.projection import SenderProjection
from parley_sender.service import OutgoingInbox, Route
from parley_sender.telnyx_client import TelnyxMessaging
from parley_sender.twilio_client import TwilioMessaging
from parley_shared.db import Pool
from parley_shared.migrations import migrate
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN
from tests.integration.outbound import outgoing_inbox, queued_reply, send_one
from tests.integration.test_sender_recovery import due_now, outcome_of

Telnyx = tuple[TelnyxSandbox, OutgoingInbox]


@pytest.fixture
async def telnyx(pool: Pool) -> AsyncIterator[Telnyx]:
    await migrate(pool, sender_tables.SERVICE, sender_tables.MIGRATIONS)
    box = TelnyxSandbox(api_key="KEY-int")
    async with serving(create_app(box)) as url:
        client = TelnyxMessaging(box.api_key, url + "/v2", timeout_s=10)
        # Twilio at an address nothing answers: a reply sent that way would fail loudly.
        nowhere = TwilioMessaging(ACCOUNT_SID, AUTH_TOKEN, "http://127.0.0.1:9", 1)
        inbox = outgoing_inbox(nowhere)
        inbox.routes = {
            **inbox.routes,
            "telnyx": Route(client, "https://parley.test/webhooks/telnyx/messages"),
        }
        try:
            yield box, inbox
        finally:
            await client.close()
            await nowhere.close()


async def test_a_reply_goes_out_through_telnyx(pool: Pool, telnyx: Telnyx) -> None:
    box, inbox = telnyx
    reply = await queued_reply(pool, SenderProjection(pool), "Yes, 10 to 4.", provider="telnyx")
    assert await send_one(pool, inbox)
    [message] = box.sent
    assert (message["text"], message["from"]["phone_number"]) == ("Yes, 10 to 4.", "+15557654321")
    assert await outcome_of(pool, reply.event_id) == ("sent", message["id"])


async def test_an_attempt_that_timed_out_is_made_again_and_sends_nothing_twice(
    pool: Pool, telnyx: Telnyx
) -> None:
    box, inbox = telnyx
    reply = await queued_reply(pool, SenderProjection(pool), "Hello again.", provider="telnyx")
    inbox.call_timeout_s = 0.5
    box.hangs.append(3.0)  # Telnyx takes it; its answer comes after ours gave up
    assert await send_one(pool, inbox)
    assert len(box.sent) == 1
    assert await outcome_of(pool, reply.event_id) == ("sending", None)  # it may have gone
    await due_now(pool)
    inbox.call_timeout_s = 10
    assert await send_one(pool, inbox)  # the same key again: Telnyx answers the first message
    assert len(box.sent) == 1
    assert await outcome_of(pool, reply.event_id) == ("sent", box.sent[0]["id"])


async def test_telnyxs_answers_mean_what_twilios_do(pool: Pool, telnyx: Telnyx) -> None:
    box, inbox = telnyx
    busy = await queued_reply(pool, SenderProjection(pool), "later", provider="telnyx")
    box.refusals.append((503, "10011", "Service unavailable"))
    assert await send_one(pool, inbox)
    assert await outcome_of(pool, busy.event_id) == ("sending", None)  # retried
    await due_now(pool)
    assert await send_one(pool, inbox)
    assert await outcome_of(pool, busy.event_id) == ("sent", box.sent[0]["id"])

    refused = await queued_reply(pool, SenderProjection(pool), "never", provider="telnyx")
    box.refusals.append((422, "40310", "Invalid 'to' address"))
    assert await send_one(pool, inbox)
    assert await outcome_of(pool, refused.event_id) == ("failed", None)
    assert len(box.sent) == 1
