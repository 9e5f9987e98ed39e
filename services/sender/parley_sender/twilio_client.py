"""The Twilio adapter: send a message, and look for one we may already have sent."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from twilio.base import values
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client


@dataclass(frozen=True)
class Accepted:
    message_sid: str
    status: str
    segments: int | None


class SendError(Exception):
    def __init__(self, http_status: int | None, code: int | None, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message


class MessagingPort(Protocol):
    async def send(
        self,
        *,
        to: str,
        from_: str,
        messaging_service_sid: str | None,
        body: str,
        status_callback: str,
        media_urls: Sequence[str] = (),
        content_sid: str | None = None,
        content_variables: Mapping[str, str] | None = None,
        # Providers that take one (Telnyx) send nothing again for a key they have seen.
        idempotency_key: str | None = None,
    ) -> Accepted: ...

    async def find_sent(self, *, to: str, body: str | None, since: datetime) -> list[str]: ...

    async def close(self) -> None: ...


class TwilioMessaging:
    """``twilio.rest.Client`` on its asyncio HTTP client; ``api_base_url`` may be a sandbox."""

    LOOKUP_LIMIT = 1000

    def __init__(
        self, account_sid: str, auth_token: str, api_base_url: str, timeout_s: float
    ) -> None:
        self._http = AsyncTwilioHttpClient(timeout=timeout_s)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._client.api.base_url = api_base_url.rstrip("/")

    async def send(
        self,
        *,
        to: str,
        from_: str,
        messaging_service_sid: str | None,
        body: str,
        status_callback: str,
        media_urls: Sequence[str] = (),
        content_sid: str | None = None,
        content_variables: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        # Twilio takes no idempotency key: after an ambiguous attempt the sender looks the
        # message up (``find_sent``) before it sends again.
        origin = (
            {"messaging_service_sid": messaging_service_sid}
            if messaging_service_sid
            else {"from_": from_}
        )
        try:
            message = await self._client.messages.create_async(
                to=to,
                # A template is the whole message: Twilio renders its text.
                body=values.unset if content_sid else body,
                content_sid=content_sid or values.unset,
                content_variables=json.dumps(dict(content_variables or {}))
                if content_sid
                else values.unset,
                status_callback=status_callback,
                media_url=list(media_urls) if media_urls else values.unset,
                **origin,
            )
        except TwilioRestException as exc:
            raise SendError(exc.status, exc.code, str(exc.msg)) from exc
        except (OSError, TimeoutError) as exc:
            raise SendError(None, None, repr(exc)) from exc
        segments = int(message.num_segments) if message.num_segments else None
        return Accepted(str(message.sid), str(message.status or "queued"), segments)

    async def find_sent(self, *, to: str, body: str | None, since: datetime) -> list[str]:
        """SIDs of outbound messages to ``to`` with ``body`` (any body: None, for a template,
        whose text Twilio rendered) created since ``since``, oldest first. No ``DateSent``
        filter: a message Twilio accepted but has not sent yet has no send date, and it is
        exactly the one looked for. Every page is read (up to ``LOOKUP_LIMIT`` messages to
        this one participant)."""
        try:
            messages = await self._client.messages.list_async(
                to=to, limit=self.LOOKUP_LIMIT, page_size=100
            )
        except TwilioRestException as exc:
            raise SendError(exc.status, exc.code, str(exc.msg)) from exc
        except TwilioException as exc:
            # A page that is not a 200 raises the base class, with the response beside it.
            response = exc.args[1] if len(exc.args) > 1 else None
            raise SendError(getattr(response, "status_code", None), None, repr(exc)) from exc
        except (OSError, TimeoutError) as exc:
            raise SendError(None, None, repr(exc)) from exc
        found = [
            (message.date_created, str(message.sid))
            for message in messages
            if (body is None or message.body == body)
            and message.direction != "inbound"
            and message.date_created is not None
            and message.date_created >= since
        ]
        return [sid for _, sid in sorted(found)]

    async def close(self) -> None:
        await self._http.close()
