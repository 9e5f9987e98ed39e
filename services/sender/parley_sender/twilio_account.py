"""The Twilio adapter for the account's set-up: credentials, numbers, Messaging Services."""

from __future__ import annotations

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from parley_sender.setup_check import MessagingService, Number


class AccountError(Exception):
    """Twilio refused the credentials or could not be reached."""


class TwilioAccount:
    """``api_base_url`` other than Twilio's (the sandbox) serves every Twilio domain."""

    def __init__(
        self, account_sid: str, auth_token: str, api_base_url: str, timeout_s: float = 10.0
    ) -> None:
        self._sid = account_sid
        self._http = AsyncTwilioHttpClient(timeout=timeout_s)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        base = api_base_url.rstrip("/")
        if base != "https://api.twilio.com":
            self._client.api.base_url = base
            self._client.messaging.base_url = base

    async def name(self) -> str:
        """The account's name; AccountError when the credentials are refused."""
        try:
            account = await self._client.api.v2010.accounts(self._sid).fetch_async()
        except TwilioRestException as exc:
            raise AccountError(f"Twilio refused the credentials ({exc.status}: {exc.msg})") from exc
        except (TwilioException, OSError, TimeoutError) as exc:
            raise AccountError(f"Twilio could not be reached: {exc!r}") from exc
        return str(account.friendly_name or self._sid)

    async def numbers(self) -> list[Number]:
        found = await self._client.incoming_phone_numbers.list_async(page_size=100)
        return [
            Number(str(n.sid), str(n.phone_number), n.sms_url or None, n.sms_method or None)
            for n in found
        ]

    async def messaging_services(self) -> list[MessagingService]:
        found = await self._client.messaging.v1.services.list_async(page_size=100)
        return [
            MessagingService(
                str(s.sid),
                str(s.friendly_name or s.sid),
                s.inbound_request_url or None,
                bool(s.use_inbound_webhook_on_number),
                s.status_callback or None,
            )
            for s in found
        ]

    async def point_number(self, sid: str, url: str) -> None:
        """Set a number's "A message comes in" webhook to ``url`` (HTTP POST)."""
        await self._client.incoming_phone_numbers(sid).update_async(sms_url=url, sms_method="POST")

    async def close(self) -> None:
        await self._http.close()
