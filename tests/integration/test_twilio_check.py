"""The Twilio set-up check against the sandbox: which numbers and Messaging Services send
their messages to this Parley, the fix for each that does not, and ``--fix``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from parley_dev import sandbox
from parley_dev.serve import serving
from parley_sender.check import run
from parley_sender.settings import TwilioSettings
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN

PUBLIC = "https://parley.example.org"


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[sandbox.Sandbox, str]]:
    box = sandbox.Sandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    async with serving(sandbox.create_app(box)) as url:
        yield box, url


def settings(url: str, token: str = AUTH_TOKEN) -> TwilioSettings:
    return TwilioSettings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=token,
        twilio_api_base_url=url,
        public_base_url=PUBLIC,
    )


async def test_the_check_names_what_is_wrong_and_fixes_numbers(
    twilio: tuple[sandbox.Sandbox, str], capsys: pytest.CaptureFixture[str]
) -> None:
    box, url = twilio
    right = box.account.add_number("+15550001111", PUBLIC + "/webhooks/twilio/messages")
    wrong = box.account.add_number("+15550002222", "https://old-bot.example.com/sms")
    box.account.add_service("support", inbound_url=None)
    box.account.add_service("marketing", "https://elsewhere.example.com/in", "https://x.test/s")

    assert await run(settings(url), fix=False) == 1
    out = capsys.readouterr().out
    assert f"ok  number +15550001111 ({right['sid']})" in out
    assert f"FIX number +15550002222 ({wrong['sid']})" in out
    assert "incoming messages go to https://old-bot.example.com/sms" in out
    assert f"fix: set 'A message comes in' to {PUBLIC}/webhooks/twilio/messages" in out
    assert "ok  messaging service support" in out
    assert "FIX messaging service marketing" in out
    assert "FIX messaging service marketing status callback" in out

    assert await run(settings(url), fix=True) == 1  # the service still needs a person
    assert wrong["sms_url"] == PUBLIC + "/webhooks/twilio/messages"
    box.account.services.pop()
    assert await run(settings(url), fix=False) == 0


async def test_refused_credentials_are_said_so(
    twilio: tuple[sandbox.Sandbox, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = twilio
    assert await run(settings(url, token="wrong"), fix=False) == 2
    assert "Twilio refused the credentials (401" in capsys.readouterr().err
