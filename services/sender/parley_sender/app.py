"""The sender process: consumer, send workers, outbox relay, and health endpoints."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import TypeAdapter

from parley_sender import tables
from parley_sender.check import Report, account_of, report
from parley_sender.forms import Template
from parley_sender.pacing import Pacing
from parley_sender.projection import SenderProjection
from parley_sender.service import OutgoingInbox, Route
from parley_sender.settings import SenderSettings
from parley_sender.telnyx_client import TelnyxMessaging
from parley_sender.twilio_account import AccountError
from parley_sender.twilio_client import TwilioMessaging
from parley_shared import topics
from parley_shared.auth import UNAUTHORIZED, Problem
from parley_shared.runtime import HTTP_TELEMETRY, ProjectionRuntime, allow_browsers, health_routes
from parley_shared.tenancy import Reader, Tenancy, secret

CONSUMED = [
    topics.REPLY_GENERATED,
    topics.MESSAGE_SENT,
    topics.MESSAGE_RECEIVED,
    topics.CONVERSATION_CHANGED,
    topics.MESSAGE_REQUESTED,
    topics.TENANTS_CHANGED,
    topics.PARTICIPANTS_CHANGED,
]


def load_templates(settings: SenderSettings) -> dict[str, Template]:
    if settings.sender_whatsapp_templates is None:
        return {}
    raw = json.loads(settings.sender_whatsapp_templates.read_text())
    return TypeAdapter(dict[str, Template]).validate_python(raw)


def create_app(settings: SenderSettings) -> FastAPI:
    runtime = ProjectionRuntime(settings, tables.SERVICE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await runtime.start(tables.MIGRATIONS, settings.sender_pool_size)
        twilio = TwilioMessaging(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            str(settings.twilio_api_base_url),
            settings.sender_timeout_s,
        )
        public = str(settings.public_base_url).rstrip("/")
        telnyx = (
            TelnyxMessaging(
                settings.telnyx_api_key.get_secret_value(),
                str(settings.telnyx_api_base_url),
                settings.sender_timeout_s,
            )
            if settings.telnyx_api_key is not None
            else None
        )
        relay = runtime.outbox()
        call_timeout_s = settings.sender_timeout_s
        routes = {"twilio": Route(twilio, public + "/webhooks/twilio/status")}
        if telnyx is not None:
            routes["telnyx"] = Route(telnyx, public + "/webhooks/telnyx/messages")
        outgoing = OutgoingInbox(
            routes=routes,
            retry_window_s=settings.sender_retry_window_s,
            call_timeout_s=call_timeout_s,
            # An attempt is at most a look-up and a send, each bounded by the time-out.
            lease_s=2 * call_timeout_s + settings.inbox_lease_grace_s,
            on_settled=relay.notify,
            window_s=settings.whatsapp_window_s,
            templates=load_templates(settings),
        )
        worker = runtime.work(outgoing, settings.sender_max_in_flight)
        runtime.consume(
            CONSUMED,
            SenderProjection(
                runtime.pool,
                on_work=worker.wake,
                pace=Pacing(
                    settings.sender_segments_per_second,
                    settings.sender_segments_per_second_by_sender,
                ),
                on_due=worker.wake_in,
            ),
            # A close read in the same poll as a reply it cancels is known when it is claimed.
            first=[topics.CONVERSATION_CHANGED],
            # Settling a reply records its outcome (and an opt-out Twilio reported) with the
            # outbox row of its message.sent.
            own=[topics.MESSAGE_SENT],
        )
        try:
            yield {"tenancy": Tenancy(runtime.pool, tables.SERVICE, secret(settings.api_token))}
        finally:
            await runtime.close()
            await twilio.close()
            if telnyx is not None:
                await telnyx.close()

    app = FastAPI(
        title="Parley sender",
        summary="Sends each reply once through Twilio (or Telnyx, for its numbers).",
        lifespan=lifespan,
        telemetry=HTTP_TELEMETRY,
    )
    health_routes(app, runtime.ready)
    allow_browsers(app)

    @app.get(
        "/v1/twilio/check",
        response_model=Report,
        responses={
            **UNAUTHORIZED,
            502: {"model": Problem, "description": "Twilio refused the credentials or is away"},
        },
        tags=["twilio"],
    )
    async def twilio_check(who: Reader) -> Report:
        """Whether the account's numbers and Messaging Services send to this Parley, with
        the fix for each that does not (as ``python -m parley_sender.check`` prints it)."""
        account = account_of(settings)
        try:
            return await report(account, str(settings.public_base_url).rstrip("/"), who)
        except AccountError as exc:
            raise HTTPException(502, str(exc)) from exc
        finally:
            await account.close()

    return app
