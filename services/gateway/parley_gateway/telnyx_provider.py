"""The Telnyx adapter of the gateway: JSON posts signed with Ed25519 (``telnyx-signature-ed25519``
over ``telnyx-timestamp|body``), checked with the account's public key by the official SDK,
which also refuses timestamps more than five minutes off (replays); every messaging event on
one URL, answered with an empty 200."""

from __future__ import annotations

from telnyx import AsyncTelnyx

from parley_gateway import telnyx_core
from parley_gateway.core import InvalidWebhook
from parley_gateway.providers import Refused, Webhook
from parley_shared.events import Envelope
from parley_shared.keywords import HUMAN


class TelnyxProvider:
    name = "telnyx"
    content_type = "application/json"
    max_body_bytes: int | None = None
    answer = ("", "text/plain")

    def __init__(self, public_key: str, human: frozenset[str] = HUMAN) -> None:
        # Only its webhook verification is used here: no API key, no request is made.
        self._client = AsyncTelnyx(api_key="unused", public_key=public_key)
        self._public_key = public_key
        self._human = human

    def event_of(self, kind: str, webhook: Webhook) -> Envelope | None:
        if kind != "messages":
            raise InvalidWebhook(f"no Telnyx webhook {kind!r}")
        document = telnyx_core.parse(webhook.body)
        try:
            self._client.webhooks.unwrap(
                webhook.body.decode("utf-8"), headers=webhook.headers, key=self._public_key
            )
        except ValueError as exc:
            raise Refused(f"Telnyx signature refused: {exc}") from exc
        return telnyx_core.event_of(document, webhook.received_at, self._human)
