"""The Twilio adapter of the gateway: signed form posts (``X-Twilio-Signature``), one URL each
for inbound messages, messages' status callbacks and calls' status callbacks, answered with
empty TwiML."""

from __future__ import annotations

from parley_gateway.core import (
    InvalidWebhook,
    call_event,
    inbound_event,
    parse_form,
    status_event,
)
from parley_gateway.providers import Refused, Webhook
from parley_gateway.signature import SignatureChecker
from parley_shared.events import Envelope
from parley_shared.keywords import HUMAN

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


class TwilioProvider:
    name = "twilio"
    content_type = "application/x-www-form-urlencoded"
    max_body_bytes: int | None = None
    answer = (EMPTY_TWIML, "text/xml")

    def __init__(self, auth_token: str, human: frozenset[str] = HUMAN) -> None:
        self._signatures = SignatureChecker(auth_token)
        self._human = human

    def event_of(self, kind: str, webhook: Webhook) -> Envelope | None:
        params = parse_form(webhook.body)
        if not self._signatures.is_valid(
            webhook.url,
            params,
            webhook.headers.get("x-twilio-signature"),
            webhook.headers.get("x-twilio-webhooks-signature-settings"),
        ):
            raise Refused(
                "missing or invalid X-Twilio-Signature (Twilio signs the URL it calls: is "
                "PUBLIC_BASE_URL that URL?)"
            )
        if kind == "messages":
            return inbound_event(params, webhook.received_at, self._human)
        if kind == "status":
            return status_event(params, webhook.received_at)
        if kind == "voice":
            return call_event(params, webhook.received_at)
        raise InvalidWebhook(f"no Twilio webhook {kind!r}")
