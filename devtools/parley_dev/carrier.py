"""The phone side of the sandbox: what a carrier and Twilio do with a message a person sends.

A text to one of our numbers becomes a signed webhook to the gateway, as Twilio posts it.
Before that, Twilio answers the carrier keywords itself, as its Advanced Opt-Out does by
default: STOP gets its unsubscribe confirmation and from then on every send from that number
to that person is refused with 21610, START lifts it, HELP gets the help text. The keyword
is still posted to Parley, which keeps its own opt-out state from it.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from twilio.request_validator import RequestValidator

from parley_shared.keywords import keyword_of

if TYPE_CHECKING:
    from parley_dev.sandbox import Sandbox

TWILIO_REPLIES = {
    "opt_out": "You have successfully been unsubscribed. You will not receive any more "
    "messages from this number. Reply START to resubscribe.",
    "opt_in": "You have successfully been re-subscribed to messages from this number. Reply "
    "HELP for help. Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
    "help": "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}


async def text_in(box: Sandbox, participant: str, ours: str, body: str, public_base: str) -> bool:
    """``participant`` texts ``body`` to ``ours``; True when the gateway took the webhook."""
    keyword = keyword_of(body)
    if keyword == "opt_out":
        box.opted_out.add((participant, ours))
    elif keyword == "opt_in":
        box.opted_out.discard((participant, ours))
    if keyword is not None:
        box.answer_as_twilio(participant, ours, TWILIO_REPLIES[keyword])
    sid = "SM" + secrets.token_hex(16)
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": box.account_sid,
        "From": participant,
        "To": ours,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    if keyword in ("opt_out", "opt_in"):
        params["OptOutType"] = "STOP" if keyword == "opt_out" else "START"
    url = public_base.rstrip("/") + "/webhooks/twilio/messages"
    signature = RequestValidator(box.auth_token).compute_signature(url, params)
    return await box.deliver(url, params, signature)


# A call's status callbacks as Twilio posts them, by how the call goes.
CALLS = {
    "answered": ("ringing", "in-progress", "completed"),
    "missed": ("ringing", "no-answer"),
    "busy": ("busy",),
}


async def call_in(
    box: Sandbox,
    participant: str,
    ours: str,
    public_base: str,
    *,
    how: str,
    seconds: int = 0,
    sid: str | None = None,
) -> list[bool]:
    """``participant`` calls ``ours`` and the call goes ``how`` (``CALLS``): each status
    callback posted, signed, to the gateway's voice URL, in order; whether each was taken.
    ``sid``: the call's, to post a call's callbacks again (as Twilio retries them)."""
    sid = sid or "CA" + secrets.token_hex(16)
    url = public_base.rstrip("/") + "/webhooks/twilio/voice"
    taken = []
    for sequence, status in enumerate(CALLS[how]):
        params = {
            "CallSid": sid,
            "AccountSid": box.account_sid,
            "From": participant,
            "To": ours,
            "Direction": "inbound",
            "CallStatus": status,
            "SequenceNumber": str(sequence),
            "CallbackSource": "call-progress-events",
            "ApiVersion": "2010-04-01",
        }
        if status == "completed":
            params["CallDuration"] = str(seconds)
        signature = RequestValidator(box.auth_token).compute_signature(url, params)
        taken.append(await box.deliver(url, params, signature))
    return taken
