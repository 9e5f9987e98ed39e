"""What the gateway's webhooks say about themselves in OpenAPI: providers post bodies of
their own shape and read only the status code."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from parley_shared.auth import Problem


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


def _twilio_webhook(required: list[str]) -> dict[str, Any]:
    """What a Twilio webhook documents: Twilio posts a signed form with ``required`` among its
    fields and reads only the status code."""
    return {
        "response_class": Response,
        "responses": {
            200: {"content": {"text/xml": {}}, "description": "Accepted; empty TwiML"},
            400: _problem("Malformed webhook"),
            403: _problem("Missing or invalid X-Twilio-Signature"),
            413: _problem("Body too large"),
            415: _problem("Not a form post"),
            503: _problem("Broker unavailable; Twilio should retry"),
        },
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": required,
                            "additionalProperties": {"type": "string"},
                        }
                    }
                },
            },
            "parameters": [
                {
                    "name": "X-Twilio-Signature",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
        },
    }


# A message and its status callbacks.
WEBHOOK = _twilio_webhook(["MessageSid", "AccountSid", "From", "To"])
# A call's status callback.
VOICE_WEBHOOK = _twilio_webhook(["CallSid", "AccountSid", "From", "To", "CallStatus", "Direction"])

# Telnyx posts JSON signed with Ed25519 and reads only the status code.
TELNYX_WEBHOOK: dict[str, Any] = {
    "response_class": Response,
    "responses": {
        200: {"description": "Accepted (or an event type Parley does not keep)"},
        400: _problem("Malformed webhook"),
        403: _problem("Missing or invalid signature, or a timestamp more than 5 minutes off"),
        404: _problem("Telnyx is not configured on this gateway (TELNYX_PUBLIC_KEY)"),
        413: _problem("Body too large"),
        415: _problem("Not JSON"),
        503: _problem("Broker unavailable; Telnyx should retry"),
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["data"],
                        "properties": {"data": {"type": "object"}},
                    }
                }
            },
        },
        "parameters": [
            {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
            for name in ("telnyx-signature-ed25519", "telnyx-timestamp")
        ],
    },
}


# An Inbound Parse post: a signed multipart form, answered with an empty 200.
EMAIL_WEBHOOK: dict[str, Any] = {
    "response_class": Response,
    "responses": {
        200: {"description": "Accepted"},
        400: _problem("Malformed post"),
        403: _problem("Missing or invalid signature, or a timestamp more than 5 minutes off"),
        404: _problem("Email is not configured on this gateway (EMAIL_WEBHOOK_PUBLIC_KEY)"),
        413: _problem("Body too large"),
        415: _problem("Not multipart/form-data"),
        503: _problem("Broker unavailable; the sender should retry"),
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["from", "to"],
                        "additionalProperties": {"type": "string"},
                    }
                }
            },
        },
        "parameters": [
            {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
            for name in (
                "X-Twilio-Email-Event-Webhook-Signature",
                "X-Twilio-Email-Event-Webhook-Timestamp",
            )
        ],
    },
}
