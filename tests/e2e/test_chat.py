"""``./dev chat`` through the sandbox: Twilio's own answers to STOP/START/HELP, sends to an
opted-out person refused as Twilio refuses them, and typing that never waits for a reply."""

from __future__ import annotations

import asyncio
import io
import time
from contextlib import redirect_stdout

from parley_dev import sandbox, telnyx_sandbox
from parley_dev.carrier import TWILIO_REPLIES
from parley_dev.chat import EMAIL_ADDRESS, chat
from parley_dev.serve import serving
from tests.e2e.conftest import BOT_SMS, PUBLIC, Parley, eventually


async def test_chat_shows_parley_and_twilio_and_never_waits_for_a_reply(parley: Parley) -> None:
    box = parley.twilio
    box.public_base = PUBLIC
    me, bot = "+15550109999", BOT_SMS
    lines = ["hello", "STOP", "are you there?", "HELP", "START", "back again"]
    out = io.StringIO()
    async with serving(sandbox.create_app(box)) as url:

        def run() -> float:
            began = time.monotonic()
            with redirect_stdout(out):
                chat(lines, url, me, bot, linger_s=3.0)
            return time.monotonic() - began

        took = await asyncio.to_thread(run)
    printed = out.getvalue().splitlines()
    assert printed.count("parley> AI says: hello") == 1
    assert printed.count("parley> AI says: back again") == 1
    for keyword in ("opt_out", "help", "opt_in"):
        assert f"twilio> {TWILIO_REPLIES[keyword]}" in printed
    assert not any("are you there" in line for line in printed)  # opted out: no answer
    # Six lines, one of them never answered: nothing waited for a reply that did not come.
    assert took < 30


async def test_the_sandbox_refuses_a_send_to_an_opted_out_participant(parley: Parley) -> None:
    box = parley.twilio
    box.public_base = PUBLIC
    box.opted_out.add(("+15550108888", BOT_SMS))
    await parley.text("+15550108888", "hello")

    async def refused() -> bool:
        history = await parley.history_of("+15550108888")
        return any(m["direction"] == "outbound" and m["error_code"] == 21610 for m in history)

    await eventually(refused)
    assert box.for_number("+15550108888") == []


async def test_chat_calls_emails_and_texts_through_telnyx(parley: Parley) -> None:
    box = parley.twilio
    box.public_base = PUBLIC
    me = "+15550107777"
    out = io.StringIO()
    async with (
        serving(sandbox.create_app(box, parley.email)) as twilio_url,
        serving(telnyx_sandbox.create_app(parley.telnyx)) as telnyx_url,
    ):

        def run() -> None:
            with redirect_stdout(out):
                chat(
                    ["hi over Telnyx", "/call 45", "/call", "/email Refund: where is my refund?"],
                    telnyx_url,
                    me,
                    "+15550009999",
                    linger_s=3.0,
                    contacts=twilio_url,
                )

        await asyncio.to_thread(run)
    assert "not delivered" not in out.getvalue()
    assert "parley> AI says: hi over Telnyx" in out.getvalue().splitlines()

    async def contacts() -> list[dict[str, object]] | None:
        figures = (await parley.analytics.get("/v1/contacts")).json()["channels"]
        counted = {(c["channel"], c["total"], c["completed"], c["missed"]) for c in figures}
        return figures if counted == {("email", 1, 0, 0), ("voice", 2, 1, 1)} else None

    await eventually(contacts)
    [emailed] = await parley.conversations_of("15550107777@chat.example")
    assert emailed["our_address"] == EMAIL_ADDRESS
