"""Pure decisions of the form a message goes out in: as written, or as an approved WhatsApp
template once the participant's 24-hour window has closed (Twilio refuses free-form text
then, with 63016)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from parley_sender.core import Outcome
from parley_shared.events import OutboundRequested, ReplyGenerated
from parley_shared.whatsapp import OUTSIDE_WINDOW_CODE, window_open


class Template(BaseModel):
    """A number's approved template for replies outside the window; the reply's text fills
    ``body_variable``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    content_sid: str = Field(pattern=r"^HX[0-9a-fA-F]{32}$")
    body_variable: str | None = "1"
    variables: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class Form:
    body: str
    content_sid: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


def as_template(body: str, template: Template | None) -> Form | None:
    if template is None:
        return None
    variables = dict(template.variables)
    if template.body_variable:
        variables[template.body_variable] = body
    return Form(body, template.content_sid, variables)


def form_for(
    message: ReplyGenerated | OutboundRequested,
    last_inbound_at: datetime | None,
    now: datetime,
    window_s: float,
    template: Template | None,
) -> Form | Outcome:
    """The form to send ``message`` in, or the outcome when it cannot be sent at all."""
    if isinstance(message, OutboundRequested) and message.content_sid:
        return Form(message.body, message.content_sid, message.content_variables)
    if isinstance(message, ReplyGenerated):
        # The reply knows when its message came, even if that was not read here yet.
        last_inbound_at = max(last_inbound_at or message.inbound_at, message.inbound_at)
    if window_open(message.channel, last_inbound_at, now, window_s):
        return Form(message.body)
    return as_template(message.body, template) or outside_window()


def outside_window() -> Outcome:
    return Outcome(
        "failed",
        status="canceled",
        error_code=OUTSIDE_WINDOW_CODE,
        error_message="outside WhatsApp's 24-hour window and no template configured for "
        "this number (SENDER_WHATSAPP_TEMPLATES); not sent",
    )
