"""WhatsApp's customer-service window: free-form messages may be sent only within 24 hours of
the participant's last message; after that only approved templates, which Twilio refuses
otherwise with error 63016."""

from __future__ import annotations

from datetime import datetime, timedelta

from parley_shared.events import Channel

OUTSIDE_WINDOW_CODE = 63016


def window_open(
    channel: Channel, last_inbound_at: datetime | None, now: datetime, window_s: float
) -> bool:
    """Whether a free-form message may go out now. SMS has no window; a WhatsApp participant
    who never wrote has none open."""
    if channel != "whatsapp":
        return True
    return last_inbound_at is not None and now - last_inbound_at < timedelta(seconds=window_s)


def window_closes_at(
    channel: Channel, last_inbound_at: datetime | None, window_s: float
) -> datetime | None:
    if channel != "whatsapp" or last_inbound_at is None:
        return None
    return last_inbound_at + timedelta(seconds=window_s)
