"""The Telnyx adapter of the sender: send through the Messages API with the official SDK.

Telnyx takes an ``Idempotency-Key``: a second send with the same key returns the first
message and sends nothing. So where Twilio needs a look-up after an attempt that may have
gone through, here the attempt is simply made again with the reply's key (``find_sent``
finds nothing and the resend is the look-up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import telnyx
from telnyx import AsyncTelnyx

from parley_sender.twilio_client import Accepted, SendError
from parley_shared.telnyx import error_code


class TelnyxMessaging:
    def __init__(self, api_key: str, api_base_url: str, timeout_s: float) -> None:
        # Retries are the sender's (with backoff, within its window), not the SDK's.
        self._client = AsyncTelnyx(
            api_key=api_key, base_url=api_base_url, timeout=timeout_s, max_retries=0
        )
        # The SDK imports a resource's modules on first use: at start-up, not in the first
        # send's time-out.
        self._messages = self._client.messages

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
        if content_sid is not None:
            raise SendError(400, None, "Telnyx numbers have no WhatsApp templates here")
        try:
            sent = await self._messages.send(
                to=to,
                from_=from_,
                text=body,
                media_urls=list(media_urls) if media_urls else telnyx.omit,
                webhook_url=status_callback,
                idempotency_key=idempotency_key if idempotency_key else telnyx.omit,
            )
        except telnyx.APIStatusError as exc:
            errors = exc.body.get("errors") if isinstance(exc.body, dict) else None
            raise SendError(exc.status_code, error_code(errors), str(exc.message)) from exc
        except telnyx.APIError as exc:
            # No answer (a time-out, a dropped connection): it may have been taken.
            raise SendError(None, None, repr(exc)) from exc
        message = sent.data
        if message is None or not message.id:
            raise SendError(None, None, "Telnyx answered without a message id")
        return Accepted(message.id, "queued", message.parts)

    async def find_sent(self, *, to: str, body: str | None, since: datetime) -> list[str]:
        # The resend with the same Idempotency-Key is the look-up.
        return []

    async def close(self) -> None:
        await self._client.close()
