"""The no-durability reference for the load benchmark: Parley's HTTP flow in one process.

A webhook is checked (signature), answered with empty TwiML at once, and answered in the
background: one chat completion through the ``openai`` SDK, one send through the ``twilio``
SDK's async client. No broker, no database, nothing survives a crash: the figure Parley's
durable pipeline is compared with.

    python -m parley_dev.reference     # REFERENCE_PORT, OPENAI_BASE_URL, TWILIO_* as ./dev run
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import Response
from openai import AsyncOpenAI
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def create_app(
    *,
    openai_base_url: str,
    twilio_api_base_url: str,
    account_sid: str,
    auth_token: str,
    public: str,
) -> FastAPI:
    validator = RequestValidator(auth_token)
    tasks: set[asyncio.Task[None]] = set()
    state: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = AsyncOpenAI(api_key="sk-reference", base_url=openai_base_url, max_retries=2)
        http = AsyncTwilioHttpClient()
        twilio = Client(account_sid, auth_token, http_client=http)
        twilio.api.base_url = twilio_api_base_url.rstrip("/")
        state.update(model=model, twilio=twilio)
        try:
            yield
        finally:
            await model.close()
            await http.close()

    app = FastAPI(title="no-durability reference", lifespan=lifespan)

    async def answer(params: dict[str, str]) -> None:
        model: AsyncOpenAI = state["model"]  # type: ignore[assignment]
        twilio: Client = state["twilio"]
        completion = await model.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "You answer text messages."},
                {"role": "user", "content": params.get("Body", "")},
            ],
        )
        text = completion.choices[0].message.content or ""
        await twilio.messages.create_async(
            to=params["From"],
            from_=params["To"],
            body=text[:320],
            status_callback=public + "/webhooks/twilio/status",
        )

    async def checked(request: Request) -> dict[str, str] | None:
        params = dict(parse_qsl((await request.body()).decode()))
        url = public + request.url.path
        if not validator.validate(url, params, request.headers.get("x-twilio-signature", "")):
            return None
        return params

    @app.post("/webhooks/twilio/messages")
    async def inbound(request: Request) -> Response:
        params = await checked(request)
        if params is None:
            return Response(status_code=403)
        task = asyncio.create_task(answer(params))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return Response(EMPTY_TWIML, media_type="text/xml")

    @app.post("/webhooks/twilio/status")
    async def status(request: Request) -> Response:
        return Response(EMPTY_TWIML if await checked(request) else "", media_type="text/xml")

    return app


def main() -> None:
    import uvicorn

    port = int(os.environ.get("REFERENCE_PORT", "8070"))
    uvicorn.run(
        create_app(
            openai_base_url=os.environ["OPENAI_BASE_URL"],
            twilio_api_base_url=os.environ["TWILIO_API_BASE_URL"],
            account_sid=os.environ["TWILIO_ACCOUNT_SID"],
            auth_token=os.environ["TWILIO_AUTH_TOKEN"],
            public=os.environ["PUBLIC_BASE_URL"].rstrip("/"),
        ),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
