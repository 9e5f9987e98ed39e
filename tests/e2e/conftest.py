"""The whole loop on a real broker and Postgres: gateway, conversation, ai and sender, with a
fake Twilio and a fake OpenAI that the official SDKs talk to over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from parley_ai.app import create_app as ai_app
from parley_ai.settings import AiSettings
from parley_analytics.app import create_app as analytics_app
from parley_analytics.settings import AnalyticsSettings
from parley_conversation.app import create_app as conversation_app
from parley_conversation.settings import ConversationSettings
from parley_dev import fake_openai, sandbox, telnyx_sandbox
from parley_dev.email_sandbox import EmailSandbox
from parley_dev.infra import free_port
from parley_dev.serve import serving
from parley_dev.telnyx_sandbox import TelnyxSandbox
from parley_gateway.app import create_app as gateway_app
from parley_gateway.settings import GatewaySettings
from parley_sender.app import create_app as sender_app
from parley_sender.settings import SenderSettings
from parley_shared.settings import BusSettings
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN, form, inbound_params, signed

API_TOKEN = "e2e-api-token"
PUBLIC = "https://parley.test"
BOT_SMS = "+15557654321"
BOT_WHATSAPP = "whatsapp:+14155238886"
T = TypeVar("T")


@dataclass
class Parley:
    gateway: str
    conversation: httpx.AsyncClient
    twilio: sandbox.Sandbox
    telnyx: TelnyxSandbox
    openai: fake_openai.FakeOpenAI
    http: httpx.AsyncClient
    analytics: httpx.AsyncClient
    sender: httpx.AsyncClient
    database: str
    bus: BusSettings
    twilio_url: str = ""
    ai: httpx.AsyncClient | None = None
    email: EmailSandbox = field(default_factory=EmailSandbox)

    async def text(self, participant: str, body: str, **extra: str) -> dict[str, str]:
        to = BOT_WHATSAPP if participant.startswith("whatsapp:") else BOT_SMS
        params = inbound_params(From=participant, To=to, Body=body, **extra)
        await self.post_inbound(params)
        return params

    async def post_inbound(self, params: dict[str, str]) -> None:
        url = PUBLIC + "/webhooks/twilio/messages"
        response = await self.http.post(
            self.gateway + "/webhooks/twilio/messages",
            content=form(params),
            headers=signed(url, params),
        )
        assert response.status_code == 200, response.text

    async def status(self, sid: str, participant: str, status: str, **extra: str) -> None:
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": ACCOUNT_SID,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": participant,
            "From": BOT_WHATSAPP if participant.startswith("whatsapp:") else BOT_SMS,
            "ApiVersion": "2010-04-01",
            **extra,
        }
        url = PUBLIC + "/webhooks/twilio/status"
        response = await self.http.post(
            self.gateway + "/webhooks/twilio/status",
            content=form(params),
            headers=signed(url, params),
        )
        assert response.status_code == 200, response.text

    async def conversations_of(self, participant: str) -> list[dict[str, Any]]:
        page = await self.api("/v1/conversations", params={"participant": participant})
        return list(page["items"])

    async def api(self, path: str, method: str = "GET", **kwargs: Any) -> Any:
        response = await self.conversation.request(method, path, **kwargs)
        assert response.status_code in (200, 201, 202), response.text
        return response.json()

    async def history_of(self, participant: str) -> list[dict[str, Any]]:
        page = await self.api("/v1/conversations", params={"participant": participant})
        assert page["items"], f"no conversation for {participant}"
        return list(
            (await self.api(f"/v1/conversations/{page['items'][0]['id']}/messages"))["items"]
        )


async def eventually(check: Callable[[], Awaitable[T | None]], timeout_s: float = 20.0) -> T:
    """Poll ``check`` until it returns something truthy; fail with its last error."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: BaseException | None = None
    while loop.time() < deadline:
        try:
            result = await check()
            if result:
                return result
        except AssertionError as exc:
            last = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout_s}s; last: {last!r}")


@pytest.fixture
async def parley(
    request: pytest.FixtureRequest, bus_settings: BusSettings, database: str, tmp_path: Path
) -> AsyncIterator[Parley]:
    """Every service in this process. Parametrize indirectly to change settings:
    ``{"whatsapp_window_s": 2, "templates": {number: {...}}}``."""
    options: dict[str, Any] = getattr(request, "param", {})
    window = {
        "whatsapp_window_s": options.get("whatsapp_window_s", 86_400.0),
        "handoff_keywords": options.get("handoff_keywords", ""),
    }
    templates = None
    if "templates" in options:
        templates = tmp_path / "templates.json"
        templates.write_text(json.dumps(options["templates"]))
    twilio = sandbox.Sandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    telnyx = TelnyxSandbox(api_key="KEY-e2e")
    email = EmailSandbox()
    openai = fake_openai.FakeOpenAI()
    bus = bus_settings.model_dump()
    async with contextlib.AsyncExitStack() as stack:
        twilio_url = await stack.enter_async_context(serving(sandbox.create_app(twilio)))
        openai_url = await stack.enter_async_context(serving(fake_openai.create_app(openai)))
        telnyx_url = await stack.enter_async_context(serving(telnyx_sandbox.create_app(telnyx)))
        # Twilio signs the public URL; the sandbox signs that and delivers to the local gateway,
        # as a proxy or tunnel in front of Parley would.
        gateway = GatewaySettings(
            **bus,
            database_url=database,
            twilio_auth_token=AUTH_TOKEN,
            public_base_url=PUBLIC,
            handoff_keywords=window["handoff_keywords"],
            telnyx_public_key=telnyx.public_key,
            email_webhook_public_key=email.public_key,
        )
        gateway_url = await stack.enter_async_context(serving(gateway_app(gateway)))
        twilio.deliver_to = telnyx.deliver_to = (PUBLIC, gateway_url)
        # The console (served by the conversation service) is told where the others are.
        ai_port, sender_port, analytics_port = free_port(), free_port(), free_port()
        conversation = ConversationSettings(
            **bus,
            **window,
            database_url=database,
            api_token=API_TOKEN,
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=AUTH_TOKEN,
            # The sandbox stands in for Twilio's media hosts.
            twilio_media_hosts="127.0.0.1",
            console_ai_url=f"http://127.0.0.1:{ai_port}",
            console_analytics_url=f"http://127.0.0.1:{analytics_port}",
            console_sender_url=f"http://127.0.0.1:{sender_port}",
        )
        conversation_url = await stack.enter_async_context(serving(conversation_app(conversation)))
        ai = AiSettings(
            **bus,
            database_url=database,
            openai_api_key="sk-test",
            openai_base_url=openai_url + "/v1",
            ai_max_retries=2,
            ai_timeout_s=10,
            ai_rate_limit_per_minute=options.get("ai_rate_limit_per_minute", 20),
            api_token=API_TOKEN,
            **window,
        )
        ai_url = await stack.enter_async_context(serving(ai_app(ai), ai_port))
        sender = SenderSettings(
            **bus,
            database_url=database,
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=AUTH_TOKEN,
            twilio_api_base_url=twilio_url,
            public_base_url=PUBLIC,
            api_token=API_TOKEN,
            sender_whatsapp_templates=templates,
            sender_segments_per_second=options.get("sender_segments_per_second", 0.0),
            telnyx_api_key=telnyx.api_key if options.get("telnyx_sender", True) else None,
            telnyx_api_base_url=telnyx_url + "/v2",
            **window,
        )
        sender_url = await stack.enter_async_context(serving(sender_app(sender), sender_port))
        analytics = AnalyticsSettings(**bus, **window, database_url=database, api_token=API_TOKEN)
        analytics_url = await stack.enter_async_context(
            serving(analytics_app(analytics), analytics_port)
        )
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=20))
        stats = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=analytics_url, timeout=20, headers={"Authorization": f"Bearer {API_TOKEN}"}
            )
        )
        api = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=conversation_url,
                timeout=20,
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            )
        )
        sender_api = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=sender_url, timeout=20, headers={"Authorization": f"Bearer {API_TOKEN}"}
            )
        )
        yield Parley(
            gateway=gateway_url,
            conversation=api,
            twilio=twilio,
            telnyx=telnyx,
            openai=openai,
            http=http,
            analytics=stats,
            sender=sender_api,
            database=database,
            bus=bus_settings,
            twilio_url=twilio_url,
            email=email,
            ai=await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=ai_url, timeout=20, headers={"Authorization": f"Bearer {API_TOKEN}"}
                )
            ),
        )
