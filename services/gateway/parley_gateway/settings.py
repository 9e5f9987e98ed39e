from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr

from parley_shared.settings import BusSettings, KeywordSettings


class GatewaySettings(BusSettings, KeywordSettings):
    # HANDOFF_KEYWORDS: the gateway decides what each message asks for (``intent``).
    twilio_auth_token: SecretStr = Field(min_length=1)
    public_base_url: AnyHttpUrl
    # Telnyx's public key (base64, from its portal): set, the gateway accepts Telnyx
    # messaging webhooks at /webhooks/telnyx/messages; unset, that URL answers 404.
    telnyx_public_key: str | None = Field(None, min_length=1)
    # The inbound-email webhook's verification key (base64 DER of an ECDSA P-256 key, as
    # SendGrid shows it): set, /webhooks/email/inbound accepts signed posts; unset, 404.
    email_webhook_public_key: str | None = Field(None, min_length=1)
    # Emails carry attachments: their posts may be far larger than a message's.
    max_email_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    gateway_host: str = "0.0.0.0"
    gateway_port: int = Field(8080, ge=1, le=65535)
    # Well under Twilio's 15 s budget for the whole webhook, so Twilio sees our 503, not a
    # time-out, and retries or uses the fallback URL.
    publish_timeout_s: float = Field(5.0, gt=0, le=12)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    # Only for participants' keys (keyring.py): the gateway seals what it publishes, so it
    # cannot publish to Kafka without it.
    database_url: str | None = Field(None, min_length=1)
