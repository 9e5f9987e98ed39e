"""The inbound-email adapter of the gateway: an Inbound Parse post (``multipart/form-data``)
signed the way SendGrid signs its webhooks: an ECDSA P-256 / SHA-256 signature (base64 DER,
``X-Twilio-Email-Event-Webhook-Signature``) over the timestamp header's value followed by the
body, checked with the account's verification key (base64 DER, as SendGrid shows it).
Timestamps more than five minutes off are refused, so a captured post cannot be replayed."""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from parley_gateway.core import InvalidWebhook
from parley_gateway.email_core import email_event, parse_multipart
from parley_gateway.providers import Refused, Webhook
from parley_shared.events import Envelope

SIGNATURE = "x-twilio-email-event-webhook-signature"
TIMESTAMP = "x-twilio-email-event-webhook-timestamp"
TOLERANCE = timedelta(minutes=5)


def verification_key(encoded: str) -> ec.EllipticCurvePublicKey:
    """The verification key from its base64 DER form; ValueError when it is not one."""
    try:
        key = load_der_public_key(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a base64 DER public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve public key")
    return key


class EmailProvider:
    name = "sendgrid"
    content_type = "multipart/form-data"
    answer = ("", "text/plain")

    def __init__(self, public_key: str, max_body_bytes: int) -> None:
        self._key = verification_key(public_key)
        self.max_body_bytes: int | None = max_body_bytes

    def _check(self, webhook: Webhook) -> None:
        signature, timestamp = webhook.headers.get(SIGNATURE), webhook.headers.get(TIMESTAMP)
        if not signature or not timestamp:
            raise Refused(f"missing {SIGNATURE} or {TIMESTAMP}")
        if not timestamp.isdigit():
            raise Refused(f"{TIMESTAMP} is not a Unix time")
        sent = int(timestamp)
        now = webhook.received_at.timestamp()
        if abs(now - sent) > TOLERANCE.total_seconds():
            raise Refused(f"{TIMESTAMP} is more than 5 minutes from now (a replay?)")
        try:
            self._key.verify(
                base64.b64decode(signature, validate=True),
                timestamp.encode("ascii") + webhook.body,
                ec.ECDSA(hashes.SHA256()),
            )
        except (binascii.Error, InvalidSignature) as exc:
            raise Refused("the email webhook's signature does not match its body") from exc

    def event_of(self, kind: str, webhook: Webhook) -> Envelope | None:
        if kind != "inbound":
            raise InvalidWebhook(f"no email webhook {kind!r}")
        self._check(webhook)
        fields, files = parse_multipart(webhook.headers.get("content-type", ""), webhook.body)
        return email_event(fields, files, webhook.received_at)
