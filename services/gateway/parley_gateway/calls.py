"""Pure decisions of the gateway about voice calls: from Twilio's call status callback to a
``call.updated`` event that joins the caller's SMS thread."""

from __future__ import annotations

from datetime import datetime

from parley_gateway.core import InvalidWebhook, Params, _check_sid, _int, _required
from parley_shared.events import CallOutcome, CallUpdated, Envelope, new_envelope
from parley_shared.identity import call_event_id, channel_of, conversation_key

# Twilio's statuses of a call that ended with no one answering. ``completed`` means answered;
# every other status (queued, initiated, ringing, in-progress, and any Twilio adds later)
# means the call is under way.
MISSED = frozenset({"busy", "no-answer", "canceled", "failed"})


def outcome_of(status: str) -> CallOutcome:
    if status == "completed":
        return "completed"
    return "missed" if status in MISSED else "started"


def call_event(params: Params, received_at: datetime) -> Envelope:
    """A ``call.updated`` event for a voice status callback. The call joins the thread of
    the participant's number and ours on SMS: calls and texts of one person read as one
    history."""
    call_sid = _check_sid("CallSid", _required(params, "CallSid"), ("CA",))
    account_sid = _check_sid("AccountSid", _required(params, "AccountSid"), ("AC",))
    status = _required(params, "CallStatus").lower()
    if not status.replace("-", "").isalpha():
        raise InvalidWebhook(f"CallStatus {status!r} is not a status")
    direction = "inbound" if _required(params, "Direction") == "inbound" else "outbound"
    caller, called = _required(params, "From"), _required(params, "To")
    participant, our_address = (caller, called) if direction == "inbound" else (called, caller)
    if channel_of(participant) != "sms" or channel_of(our_address) != "sms":
        raise InvalidWebhook("a call's From and To must be phone numbers, not WhatsApp addresses")
    duration = _int(params, "CallDuration")
    if duration is not None and duration < 0:
        raise InvalidWebhook(f"CallDuration must not be negative, got {duration}")
    payload = CallUpdated(
        call_sid=call_sid,
        account_sid=account_sid,
        direction=direction,
        participant=participant,
        our_address=our_address,
        status=status,
        outcome=outcome_of(status),
        duration_s=duration,
        params={name: list(values) for name, values in params.items()},
    )
    return new_envelope(
        payload,
        event_id=call_event_id(call_sid, status),
        conversation_key=conversation_key(
            account_sid=account_sid,
            our_endpoint=our_address,
            participant=participant,
            channel="sms",
        ),
        account_sid=account_sid,
        occurred_at=received_at,
    )
