from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from parley_shared.identity import (
    bare_number,
    channel_of,
    conversation_key,
    inbound_event_id,
    status_event_id,
)

numbers = st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True)


@given(account=st.text(min_size=1, max_size=40), ours=numbers, theirs=numbers)
def test_conversation_key_is_deterministic_and_channel_sensitive(
    account: str, ours: str, theirs: str
) -> None:
    sms = conversation_key(
        account_sid=account, our_endpoint=ours, participant=theirs, channel="sms"
    )
    again = conversation_key(
        account_sid=account, our_endpoint=ours, participant=theirs, channel="sms"
    )
    whatsapp = conversation_key(
        account_sid=account,
        our_endpoint=f"whatsapp:{ours}",
        participant=f"whatsapp:{theirs}",
        channel="whatsapp",
    )
    assert sms == again
    assert sms != whatsapp
    assert sms.startswith("cv_") and theirs not in sms


def test_conversation_key_separates_participants_numbers_and_accounts() -> None:
    base = dict(
        account_sid="AC1", our_endpoint="+15550000001", participant="+15550000002", channel="sms"
    )
    key = conversation_key(**base)  # type: ignore[arg-type]
    for field, other in (
        ("account_sid", "AC2"),
        ("our_endpoint", "+15550000003"),
        ("participant", "+15550000004"),
    ):
        assert conversation_key(**{**base, field: other}) != key  # type: ignore[arg-type]


def test_whatsapp_prefix_is_the_channel_not_the_number() -> None:
    assert channel_of("whatsapp:+14155238886") == "whatsapp"
    assert channel_of("WhatsApp:+14155238886") == "whatsapp"
    assert channel_of("+14155238886") == "sms"
    assert bare_number(" whatsapp:+14155238886 ") == "+14155238886"


def test_event_ids_follow_twilio_identity() -> None:
    sid = "SM" + "0" * 32
    assert inbound_event_id(sid) == inbound_event_id(sid)
    assert inbound_event_id(sid) != inbound_event_id("SM" + "1" * 32)
    assert status_event_id(sid, "delivered") == status_event_id(sid, "DELIVERED")
    assert status_event_id(sid, "delivered") != status_event_id(sid, "sent")
    assert status_event_id(sid, "sent") != inbound_event_id(sid)
