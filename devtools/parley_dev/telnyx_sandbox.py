"""A local Telnyx: the Messages API the official SDK sends through (``TELNYX_BASE_URL`` =
``<sandbox>/v2``), and the signed messaging webhooks Telnyx posts (``message.received`` for a
participant's text, ``message.sent`` and ``message.finalized`` as a sent message moves on), so
Parley's Telnyx side runs and is tested without an account.

Webhooks are signed as Telnyx signs them (Ed25519 over ``timestamp|body``) with the sandbox's
own key: give the gateway ``public_key``. A repeated ``Idempotency-Key`` gets the first
answer back and sends nothing, as Telnyx does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from nacl.signing import SigningKey

E164 = re.compile(r"\+[1-9][0-9]{5,14}")
WEBHOOK_PATH = "/webhooks/telnyx/messages"


@dataclass
class TelnyxSandbox:
    api_key: str
    signing_key: SigningKey = field(default_factory=SigningKey.generate)
    organization_id: str = "6f1b7c1e-0000-4000-8000-00000000a11c"
    # What each sent message goes through after "queued", each a webhook.
    lifecycle: tuple[str, ...] = ("sent", "delivered")
    # (the public base URL webhooks are addressed to, where the gateway really listens)
    deliver_to: tuple[str, str] | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    # Faults: each entry makes the next send take the message and answer only that many
    # seconds later (the caller has given up by then: did it go?).
    hangs: list[float] = field(default_factory=list)
    # ... and each of these, the next send refused with (HTTP status, Telnyx code, title).
    refusals: list[tuple[int, str, str]] = field(default_factory=list)
    webhooks: list[tuple[str, int]] = field(default_factory=list)
    # The answer to each Idempotency-Key, given again for a repeat.
    answered: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def public_key(self) -> str:
        return base64.b64encode(bytes(self.signing_key.verify_key)).decode()

    def signed(self, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        signature = self.signing_key.sign(timestamp.encode() + b"|" + body).signature
        return {
            "Content-Type": "application/json",
            "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
            "telnyx-timestamp": timestamp,
        }

    async def post(self, url: str, event_type: str, payload: dict[str, Any]) -> int:
        """Post one signed webhook, as Telnyx would; returns the HTTP status (0: unreachable)."""
        if self.deliver_to is not None and url.startswith(self.deliver_to[0]):
            url = self.deliver_to[1] + url[len(self.deliver_to[0]) :]
        document = {
            "data": {
                "event_type": event_type,
                "id": str(uuid.uuid4()),
                "payload": payload,
                "record_type": "event",
            },
            "meta": {"attempt": 1, "delivered_to": url},
        }
        body = json.dumps(document).encode()
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                status = (await http.post(url, content=body, headers=self.signed(body))).status_code
        except httpx.HTTPError:
            status = 0
        self.webhooks.append((event_type, status))
        return status

    async def text(self, participant: str, ours: str, text: str) -> int:
        """A participant texts one of our Telnyx numbers."""
        if self.deliver_to is None:
            raise RuntimeError("deliver_to is not set: nowhere to post message.received")
        payload = self.message("inbound", participant, ours, "webhook_delivered", text)
        return await self.post(self.deliver_to[0] + WEBHOOK_PATH, "message.received", payload)

    def message(
        self,
        direction: str,
        from_: str,
        to: str,
        status: str,
        text: str,
        media_urls: list[str] | None = None,
    ) -> dict[str, Any]:
        """A message object as Telnyx's API and webhooks carry it."""
        return {
            "id": str(uuid.uuid4()),
            "record_type": "message",
            "direction": direction,
            "organization_id": self.organization_id,
            "from": {"phone_number": from_},
            "to": [{"phone_number": to, "status": status}],
            "text": text,
            "media": [{"url": url} for url in media_urls or []],
            "parts": max(1, -(-len(text) // 160)),
            "type": "MMS" if media_urls else "SMS",
            "errors": [],
        }

    async def _lifecycle(self, message: dict[str, Any], url: str) -> None:
        for status in self.lifecycle:
            await asyncio.sleep(0.05)
            message["to"][0]["status"] = status
            final = status not in ("queued", "sending", "sent")
            await self.post(url, "message.finalized" if final else "message.sent", message)

    def later(self, message: dict[str, Any], url: str) -> None:
        task = asyncio.create_task(self._lifecycle(json.loads(json.dumps(message)), url))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def telnyx_error(status: int, code: str, title: str) -> JSONResponse:
    return JSONResponse({"errors": [{"code": code, "title": title}]}, status_code=status)


def create_app(sandbox: TelnyxSandbox) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # Webhooks still to post outlive no server: they would post into a stopped Parley.
        for task in list(sandbox.tasks):
            task.cancel()
        await asyncio.gather(*sandbox.tasks, return_exceptions=True)

    app = FastAPI(title="Telnyx sandbox", lifespan=lifespan)

    @app.post("/v2/messages")
    async def send(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {sandbox.api_key}":
            return telnyx_error(401, "10009", "Authentication failed")
        if sandbox.refusals:
            return telnyx_error(*sandbox.refusals.pop(0))
        key = request.headers.get("idempotency-key")
        if key is not None and key in sandbox.answered:
            return JSONResponse({"data": sandbox.answered[key]})
        try:
            body = json.loads(await request.body())
        except ValueError:
            return telnyx_error(400, "10015", "Invalid request body")
        to, from_ = body.get("to"), body.get("from")
        if not isinstance(to, str) or not E164.fullmatch(to):
            return telnyx_error(422, "40310", "Invalid 'to' address")
        if not isinstance(from_, str) or not E164.fullmatch(from_):
            return telnyx_error(422, "40305", "Invalid 'from' address")
        message = sandbox.message(
            "outbound", from_, to, "queued", body.get("text") or "", body.get("media_urls")
        )
        sandbox.sent.append(message)
        if key is not None:
            sandbox.answered[key] = message
        if isinstance(body.get("webhook_url"), str):
            sandbox.later(message, body["webhook_url"])
        if sandbox.hangs:
            await asyncio.sleep(sandbox.hangs.pop(0))
        return JSONResponse({"data": message})

    @app.post("/_sandbox/inbound")
    async def inbound(message: dict[str, str]) -> dict[str, bool]:
        """A person texts one of our Telnyx numbers: ``{"from": …, "to": …, "body": …}``."""
        try:
            status = await sandbox.text(message["from"], message["to"], message["body"])
        except KeyError as exc:
            raise HTTPException(422, "need from, to and body") from exc
        return {"accepted": status == 200}

    @app.get("/_sandbox/messages")
    async def recorded(to: str | None = None) -> list[dict[str, Any]]:
        """What Parley sent, oldest first, as the Twilio sandbox lists it (for the chat)."""
        return [
            {"to": m["to"][0]["phone_number"], "body": m["text"], "from_twilio": False}
            for m in sandbox.sent
            if to in (None, m["to"][0]["phone_number"])
        ]

    return app


def main() -> None:
    """``python -m parley_dev.telnyx_sandbox``: serve the Telnyx sandbox for ``./dev run``,
    signing with the key ``TELNYX_SANDBOX_SEED`` (base64) whose public half the gateway has."""
    import os

    import uvicorn

    box = TelnyxSandbox(
        api_key=os.environ["TELNYX_API_KEY"],
        signing_key=SigningKey(base64.b64decode(os.environ["TELNYX_SANDBOX_SEED"])),
    )
    public = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8080")
    box.deliver_to = (public, f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', 8080)}")
    uvicorn.run(
        create_app(box),
        host="127.0.0.1",
        port=int(os.environ.get("TELNYX_SANDBOX_PORT", "8091")),
        log_level="warning",
    )


if __name__ == "__main__":
    main()
