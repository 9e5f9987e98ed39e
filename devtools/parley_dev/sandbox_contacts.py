"""Calls and emails in the local sandbox, for ``./dev chat`` and people poking around: a call
to one of our numbers (Twilio's signed voice status callbacks, ``carrier.call_in``) and an
email to one of our addresses (a signed Inbound Parse post, ``email_sandbox``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from parley_dev.carrier import call_in
from parley_dev.email_sandbox import Email, EmailSandbox

if TYPE_CHECKING:
    from parley_dev.sandbox import Sandbox

EMAIL_PATH = "/webhooks/email/inbound"


class CallRequest(BaseModel):
    from_: str = Field(alias="from")
    to: str
    how: Literal["answered", "missed", "busy"] = "missed"
    seconds: int = Field(0, ge=0)


class EmailRequest(BaseModel):
    from_: str = Field(alias="from")
    to: str
    subject: str = ""
    text: str = ""


def add_routes(app: FastAPI, sandbox: Sandbox, email: EmailSandbox | None) -> None:
    @app.post("/_sandbox/call")
    async def call(call: CallRequest) -> dict[str, bool]:
        """Someone calls one of our numbers: ``{"from", "to", "how", "seconds"}``."""
        taken = await call_in(
            sandbox, call.from_, call.to, sandbox.public_base, how=call.how, seconds=call.seconds
        )
        return {"accepted": all(taken)}

    @app.post("/_sandbox/email")
    async def send_email(message: EmailRequest) -> dict[str, bool]:
        """Someone emails one of our addresses: ``{"from", "to", "subject", "text"}``."""
        if email is None or sandbox.deliver_to is None:
            raise HTTPException(404, "no email sandbox: EMAIL_SANDBOX_KEY is unset")
        written = Email(message.from_, message.to, message.subject, message.text)
        response = await email.post(sandbox.deliver_to[1] + EMAIL_PATH, written)
        return {"accepted": response.status_code == 200}
