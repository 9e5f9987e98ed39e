"""A local Twilio: the Messages REST API the SDK speaks, plus signed status callbacks.

Parley's sender talks to it through the official SDK (``TWILIO_API_BASE_URL``); it records
what Parley sends and reports delivery back to the gateway the way Twilio does: signed form
posts to the message's StatusCallback. Tests queue faults (429, 5xx, error codes) on it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import random
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from twilio.request_validator import RequestValidator

from parley_dev import sandbox_contacts
from parley_dev.carrier import text_in
from parley_dev.email_sandbox import EmailSandbox
from parley_dev.sandbox_account import Account
from parley_dev.sandbox_account import add_routes as add_account_routes
from parley_shared.sms import segments


@dataclass
class Fault:
    http_status: int
    code: int
    message: str = "sandbox fault"
    # Take the message (it will be delivered), then answer with the error anyway.
    accept: bool = False
    # Wait this long before answering (a hung Twilio; the SDK's own time-out is ignored).
    hang_s: float = 0.0


@dataclass
class Chaos:
    """Faults drawn at random for every create call (the fault-injection suite's Twilio)."""

    hang_rate: float = 0.0
    hang_s: float = 45.0
    error_rate: float = 0.0  # 500, not taken
    accept_then_error_rate: float = 0.0  # taken, then 500
    throttle_rate: float = 0.0  # 429, not taken
    list_error_rate: float = 0.0  # 500 on the list (look-up) call
    seed: int | None = None
    _random: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._random.seed(self.seed)

    def draw(self) -> Fault | None:
        roll = self._random.random()
        for rate, fault in (
            # A request that hangs and is never processed: by the time it answers, the
            # caller has long given up. (One taken and answered with an error is below.)
            (self.hang_rate, Fault(503, 20503, "chaos: hung", hang_s=self.hang_s)),
            (self.error_rate, Fault(500, 20500, "chaos: internal error")),
            (self.accept_then_error_rate, Fault(500, 20500, "chaos: taken", accept=True)),
            (self.throttle_rate, Fault(429, 20429, "chaos: too many requests")),
        ):
            if roll < rate:
                return fault
            roll -= rate
        return None

    def list_fault(self) -> Fault | None:
        if self._random.random() < self.list_error_rate:
            return Fault(500, 20500, "chaos: list failed")
        return None


@dataclass
class SentMessage:
    sid: str
    to: str
    from_: str
    body: str
    messaging_service_sid: str | None
    status_callback: str | None
    created: datetime
    status: str = "queued"
    media_urls: tuple[str, ...] = ()
    content_sid: str | None = None
    # Set when it leaves for the carrier ("sent"); Twilio lists no send date before that.
    date_sent: datetime | None = None

    def resource(self, account_sid: str) -> dict[str, Any]:
        count, _ = segments(self.body)
        return {
            "sid": self.sid,
            "account_sid": account_sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "status": self.status,
            "num_segments": str(count),
            "num_media": str(len(self.media_urls)),
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "messaging_service_sid": self.messaging_service_sid,
            "date_created": format_datetime(self.created),
            "date_updated": format_datetime(self.created),
            "date_sent": format_datetime(self.date_sent) if self.date_sent else None,
            "error_code": None,
            "error_message": None,
            "price": None,
            "price_unit": "USD",
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{self.sid}.json",
            "subresource_uris": {},
        }


@dataclass
class Sandbox:
    account_sid: str
    auth_token: str
    # Statuses reported after a send, in order; a test may change or shuffle them.
    lifecycle: list[str] = field(default_factory=lambda: ["sent", "delivered"])
    callback_delay_s: float = 0.05
    sent: list[SentMessage] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # Faults for the list call (a look-up of what was sent), in order.
    list_faults: list[Fault] = field(default_factory=list)
    chaos: Chaos | None = None
    create_calls: int = 0
    # WhatsApp participants whose 24-hour window has closed: free-form text to them is
    # refused with 63016, as Twilio does; templates (ContentSid) go through.
    window_closed: set[str] = field(default_factory=set)
    # Media participants sent, by media SID: (content type, bytes), served as Twilio does
    # (``…/Messages/{sid}/Media/{media sid}``: credentials, then a redirect to the bytes).
    media: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    # For each fetch of the bytes: whether it carried credentials (it must not).
    media_fetches_with_credentials: list[bool] = field(default_factory=list)
    # (public prefix, local prefix): sign callbacks for the public URL, deliver them locally.
    deliver_to: tuple[str, str] | None = None
    # Further local prefixes, tried in turn when one does not answer 200 (a load balancer
    # in front of several gateways).
    failover: list[str] = field(default_factory=list)
    # Report each status twice, and in any order (Twilio promises neither once nor order).
    shuffle_callbacks: bool = False
    duplicate_callbacks: bool = False
    # Statuses a gateway answered 200 for, and every status posted at all (one that got no
    # answer may still have been published), by message SID.
    reported: dict[str, list[str]] = field(default_factory=dict)
    attempted: dict[str, list[str]] = field(default_factory=dict)
    # Twilio's own answers to STOP/START/HELP, and who opted out of which of our numbers
    # (``parley_dev.carrier``): sends from that number to that person are refused (21610).
    from_twilio: list[SentMessage] = field(default_factory=list)
    # The URL Twilio posts inbound webhooks to (Parley's PUBLIC_BASE_URL).
    public_base: str = "http://127.0.0.1:8080"
    # Numbers and Messaging Services, for the set-up check (``sandbox_account``).
    account: Account = field(default_factory=Account)
    opted_out: set[tuple[str, str]] = field(default_factory=set)
    # Called with every accepted message (the load benchmark's users wait on it).
    on_send: Callable[[SentMessage], None] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _http: aiohttp.ClientSession | None = None

    def client(self) -> aiohttp.ClientSession:
        # aiohttp rather than httpx: its pool stays cheap with hundreds of callbacks in flight.
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=10)
            )
        return self._http

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        return hmac.compare_digest(header, expected)

    async def callbacks(self, message: SentMessage) -> None:
        if not message.status_callback:
            return
        validator = RequestValidator(self.auth_token)
        statuses = [s for s in self.lifecycle for _ in range(2 if self.duplicate_callbacks else 1)]
        if self.shuffle_callbacks:
            random.shuffle(statuses)
        for status in statuses:
            await asyncio.sleep(self.callback_delay_s)
            message.status = status
            if status == "sent" and message.date_sent is None:
                message.date_sent = datetime.now(UTC)
            params = {
                "MessageSid": message.sid,
                "SmsSid": message.sid,
                "AccountSid": self.account_sid,
                "MessageStatus": status,
                "SmsStatus": status,
                "To": message.to,
                "From": message.from_,
                "ApiVersion": "2010-04-01",
            }
            if message.messaging_service_sid:
                params["MessagingServiceSid"] = message.messaging_service_sid
            signature = validator.compute_signature(message.status_callback, params)
            self.attempted.setdefault(message.sid, []).append(status)
            if await self.deliver(message.status_callback, params, signature):
                self.reported.setdefault(message.sid, []).append(status)

    def answer_as_twilio(self, participant: str, ours: str, body: str) -> None:
        self.from_twilio.append(
            SentMessage(
                sid="SM" + secrets.token_hex(16),
                to=participant,
                from_=ours,
                body=body,
                messaging_service_sid=None,
                status_callback=None,
                created=datetime.now(UTC),
                status="delivered",
            )
        )

    async def deliver(self, url: str, params: dict[str, str], signature: str) -> bool:
        """Post a signed webhook to ``url`` (mapped to a local gateway); True on a 200."""
        targets = [url]
        if self.deliver_to and url.startswith(self.deliver_to[0]):
            path = url[len(self.deliver_to[0]) :]
            targets = [local + path for local in (self.deliver_to[1], *self.failover)]
        for target in targets:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.client().post(
                    target, data=params, headers={"X-Twilio-Signature": signature}
                ) as response:
                    await response.read()
                    if response.status == 200:
                        return True
        return False

    def for_number(self, number: str) -> list[SentMessage]:
        return [m for m in self.sent if m.to == number]


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def create_app(sandbox: Sandbox, email: EmailSandbox | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await sandbox.close()

    app = FastAPI(title="Parley Twilio sandbox", lifespan=lifespan)
    add_account_routes(app, sandbox.account, sandbox.account_sid, sandbox.authorised, twilio_error)
    sandbox_contacts.add_routes(app, sandbox, email)
    base = "/2010-04-01/Accounts/{account_sid}/Messages.json"

    @app.get("/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}/Media/{media_sid}")
    async def media(account_sid: str, message_sid: str, media_sid: str, request: Request) -> Any:
        if account_sid != sandbox.account_sid or not sandbox.authorised(request):
            return twilio_error(401, 20003, "Authenticate")
        if media_sid not in sandbox.media:
            return twilio_error(404, 20404, "The requested resource was not found")
        return RedirectResponse(f"/_sandbox/media/{media_sid}", status_code=307)

    @app.get("/_sandbox/media/{media_sid}")
    async def media_bytes(media_sid: str, request: Request) -> Response:
        """The signed storage URL Twilio redirects to: no credentials."""
        sandbox.media_fetches_with_credentials.append("authorization" in request.headers)
        if media_sid not in sandbox.media:
            return Response(status_code=404)
        content_type, content = sandbox.media[media_sid]
        return Response(content, media_type=content_type)

    @app.post(base)
    async def create_message(account_sid: str, request: Request) -> JSONResponse:
        if account_sid != sandbox.account_sid or not sandbox.authorised(request):
            return twilio_error(401, 20003, "Authenticate")
        sandbox.create_calls += 1
        form = await request.form()
        fault = sandbox.faults.pop(0) if sandbox.faults else None
        if fault is None and sandbox.chaos is not None:
            fault = sandbox.chaos.draw()
        if fault is not None and fault.hang_s:
            await asyncio.sleep(fault.hang_s)
        if fault is not None and fault.http_status >= 400 and not fault.accept:
            return twilio_error(fault.http_status, fault.code, fault.message)
        to = str(form.get("To") or "")
        body = str(form.get("Body") or "")
        media = tuple(str(url) for url in form.getlist("MediaUrl"))
        content_sid = str(form.get("ContentSid") or "") or None
        if content_sid is not None:
            # Twilio renders the approved template; the sandbox shows its variables.
            variables = json.loads(str(form.get("ContentVariables") or "{}"))
            body = f"[template {content_sid}] " + " ".join(
                f"{{{{{k}}}}}={v}" for k, v in sorted(variables.items())
            )
        origin = form.get("From") or form.get("MessagingServiceSid")
        if not to or not origin:
            return twilio_error(400, 21604 if not to else 21603, "A 'To'/'From' is required")
        if (not body and not media) or len(body) > 1600:
            return twilio_error(400, 21617, "The concatenated message body exceeds 1600")
        from_ = str(form.get("From") or "+15550000000")
        if to.startswith("whatsapp:") and not from_.startswith("whatsapp:"):
            from_ = "whatsapp:" + from_
        if (to, str(origin)) in sandbox.opted_out:
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        if to.startswith("whatsapp:") and to in sandbox.window_closed and content_sid is None:
            return twilio_error(
                400,
                63016,
                "Failed to send freeform message because you are outside the allowed window",
            )
        message = SentMessage(
            sid="SM" + secrets.token_hex(16),
            to=to,
            from_=from_,
            body=body,
            media_urls=media,
            content_sid=content_sid,
            messaging_service_sid=str(form.get("MessagingServiceSid") or "") or None,
            status_callback=str(form.get("StatusCallback") or "") or None,
            created=datetime.now(UTC),
        )
        sandbox.sent.append(message)
        if sandbox.on_send is not None:
            sandbox.on_send(message)
        task = asyncio.create_task(sandbox.callbacks(message))
        sandbox._tasks.add(task)
        task.add_done_callback(sandbox._tasks.discard)
        if fault is not None and fault.accept:
            return twilio_error(fault.http_status, fault.code, fault.message)
        return JSONResponse(message.resource(sandbox.account_sid), status_code=201)

    @app.get(base)
    async def list_messages(account_sid: str, request: Request) -> JSONResponse:
        if account_sid != sandbox.account_sid or not sandbox.authorised(request):
            return twilio_error(401, 20003, "Authenticate")
        fault = sandbox.list_faults.pop(0) if sandbox.list_faults else None
        if fault is None and sandbox.chaos is not None:
            fault = sandbox.chaos.list_fault()
        if fault is not None:
            return twilio_error(fault.http_status, fault.code, fault.message)
        query = request.query_params
        to = query.get("To")
        # Twilio compares send dates by day, and a message not sent yet has no send date.
        after = query.get("DateSent>")
        rows = [
            m.resource(sandbox.account_sid)
            for m in reversed(sandbox.sent)
            if (to is None or m.to == to)
            and (
                after is None
                or (m.date_sent is not None and m.date_sent.date().isoformat() >= after[:10])
            )
        ]
        uri = str(request.url.path)
        return JSONResponse(
            {
                "messages": rows,
                "page": 0,
                "page_size": len(rows) or 50,
                "first_page_uri": uri,
                "next_page_uri": None,
                "previous_page_uri": None,
                "uri": uri,
                "start": 0,
                "end": max(len(rows) - 1, 0),
            }
        )

    @app.get("/_sandbox/messages")
    async def recorded(to: str | None = None) -> list[dict[str, Any]]:
        """What Parley sent, and Twilio's own keyword answers (``from_twilio``), oldest first
        (for the chat command and for people poking around)."""
        every = [(m, False) for m in sandbox.sent] + [(m, True) for m in sandbox.from_twilio]
        return [
            {**m.resource(sandbox.account_sid), "from_twilio": own}
            for m, own in sorted(every, key=lambda item: item[0].created)
            if to in (None, m.to)
        ]

    @app.post("/_sandbox/inbound")
    async def inbound(message: dict[str, str]) -> dict[str, bool]:
        """A person texts one of our numbers: ``{"from": …, "to": …, "body": …}``."""
        try:
            participant, ours, body = message["from"], message["to"], message["body"]
        except KeyError as exc:
            raise HTTPException(422, "need from, to and body") from exc
        accepted = await text_in(sandbox, participant, ours, body, sandbox.public_base)
        return {"accepted": accepted}

    @app.post("/_sandbox/faults")
    async def add_fault(fault: dict[str, Any]) -> dict[str, int]:
        try:
            sandbox.faults.append(Fault(int(fault["http_status"]), int(fault["code"])))
        except (KeyError, ValueError) as exc:
            raise HTTPException(422, "need http_status and code") from exc
        return {"queued": len(sandbox.faults)}

    return app


def main() -> None:
    """``python -m parley_dev.sandbox``: serve the sandbox for ``./dev run``."""
    import os

    import uvicorn

    box = Sandbox(
        account_sid=os.environ["TWILIO_ACCOUNT_SID"], auth_token=os.environ["TWILIO_AUTH_TOKEN"]
    )
    box.public_base = os.environ.get("PUBLIC_BASE_URL", box.public_base)
    # Webhooks signed for the public URL, delivered to the local gateway.
    box.deliver_to = (box.public_base, f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', 8080)}")
    pem = os.environ.get("EMAIL_SANDBOX_KEY")
    uvicorn.run(
        create_app(box, EmailSandbox.from_pem(pem) if pem else None),
        host="127.0.0.1",
        port=int(os.environ.get("SANDBOX_PORT", "8090")),
        log_level="warning",
    )


if __name__ == "__main__":
    main()
