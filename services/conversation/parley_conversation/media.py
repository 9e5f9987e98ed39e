"""Participants' media, fetched from Twilio for operators: only from Twilio's hosts, with the
account's credentials, and only to a caller of the authenticated API.

Twilio answers a media URL with a redirect to a short-lived signed URL on its storage; that
hop is followed without the credentials, which never leave for a host not on the list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

MAX_BYTES = 25 * 1024 * 1024  # WhatsApp allows 16 MB, MMS 5 MB
TWILIO_HOSTS = ("api.twilio.com", "media.twiliocdn.com", "mms.twiliocdn.com")


class MediaRefused(Exception):
    """Not a Twilio media URL (or Twilio is not configured): nothing is fetched."""


class MediaUnavailable(Exception):
    """Twilio did not hand the media over."""


@dataclass(frozen=True)
class MediaSource:
    account_sid: str
    auth_token: str
    hosts: tuple[str, ...]
    timeout_s: float = 20.0

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host not in self.hosts:
            return False
        # Plain HTTP only for a host named with its port (a local sandbox), never Twilio's.
        return parts.scheme == "https" or (
            parts.scheme == "http" and parts.port is not None and host not in TWILIO_HOSTS
        )

    async def open(self, url: str) -> tuple[str, AsyncIterator[bytes]]:
        """The media's content type and its bytes, streamed."""
        if not self.allowed(url):
            raise MediaRefused(f"not a Twilio media URL: {urlsplit(url).hostname}")
        client = httpx.AsyncClient(timeout=self.timeout_s)
        try:
            response = await client.send(
                client.build_request("GET", url),
                auth=(self.account_sid, self.auth_token),
                stream=True,
            )
            if response.is_redirect:
                target = urljoin(url, response.headers.get("location", ""))
                await response.aclose()
                if urlsplit(target).scheme != "https" and not self.allowed(target):
                    raise MediaUnavailable("Twilio redirected the media to a non-HTTPS URL")
                # A signed URL: no credentials go with it.
                response = await client.send(client.build_request("GET", target), stream=True)
            if response.status_code != 200:
                await response.aclose()
                raise MediaUnavailable(f"Twilio answered {response.status_code} for the media")
        except httpx.HTTPError as exc:
            await client.aclose()
            raise MediaUnavailable(f"Twilio media could not be fetched: {exc!r}") from exc
        except BaseException:
            await client.aclose()
            raise
        content_type = response.headers.get("content-type", "application/octet-stream")
        return content_type, _body(client, response)


async def _body(client: httpx.AsyncClient, response: httpx.Response) -> AsyncIterator[bytes]:
    sent = 0
    try:
        async for chunk in response.aiter_bytes():
            sent += len(chunk)
            if sent > MAX_BYTES:
                break
            yield chunk
    finally:
        await response.aclose()
        await client.aclose()
