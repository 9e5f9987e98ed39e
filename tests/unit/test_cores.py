"""Pure decisions of the services: no I/O, no event loop."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_ai.core import (
    Behaviour,
    NumberConfig,
    Persona,
    behaviour_for,
    changed_fields,
    persona_for,
    reason_not_to_answer,
    shape_reply,
)
from parley_analytics.core import spreadsheet_safe
from parley_conversation.core import (
    BadCursor,
    decode_cursor,
    encode_cursor,
    handoff_state,
    refuse_handoff,
    refuse_send,
)
from parley_sender.core import Outcome, backoff_s, classify_error
from parley_sender.forms import Form, Template, form_for
from parley_sender.pacing import Pacing, slots
from parley_shared.events import AiOverrides, Location, Media, MessageReceived, ReplyGenerated
from parley_shared.keywords import asks_for_human, keyword_of
from parley_shared.sms import MAX_BODY, encoding_of, fit_segments, segments, trim_to
from parley_shared.status import fold_statuses, next_status


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (1, "GSM-7")),
        ("a" * 160, (1, "GSM-7")),
        ("a" * 161, (2, "GSM-7")),
        ("a" * 306, (2, "GSM-7")),
        ("a" * 307, (3, "GSM-7")),
        ("€" * 80, (1, "GSM-7")),  # extended characters count twice
        ("€" * 81, (2, "GSM-7")),
        ("ç" + "a" * 69, (1, "UCS-2")),
        ("😀" + "a" * 69, (2, "UCS-2")),  # an emoji is two UTF-16 units
        ("é" * 70, (1, "GSM-7")),
    ],
)
def test_segments(text: str, expected: tuple[int, str]) -> None:
    assert segments(text) == expected


@given(st.text(min_size=1, max_size=2000), st.integers(min_value=20, max_value=1600))
def test_trim_never_exceeds_the_limit(text: str, limit: int) -> None:
    assert len(trim_to(text, limit)) <= limit


@given(
    st.text(
        alphabet=st.sampled_from([*"abc xyz.,!?€{", "é", "ç", "😀", "\n"]),
        min_size=1,
        max_size=3000,
    ),
    st.integers(min_value=1, max_value=5),
)
def test_fitting_to_segments_keeps_the_budget_and_the_encoding(text: str, limit: int) -> None:
    body = fit_segments(text, limit)
    count, encoding = segments(body)
    assert count <= limit and len(body) <= MAX_BODY
    if encoding_of(text) == "GSM-7":
        assert encoding == "GSM-7"
    if segments(text.strip())[0] <= limit and len(text.strip()) <= MAX_BODY:
        assert body == text.strip()


def test_a_gsm_answer_cut_mid_sentence_stays_gsm() -> None:
    body = fit_segments("word " * 200, 3)
    assert body.endswith("word...") and segments(body) == (3, "GSM-7")
    assert fit_segments("mot é " * 100, 1).endswith("...")
    assert fit_segments("ça va " * 100, 1).endswith("…")  # already UCS-2: the real ellipsis


def test_trim_prefers_a_sentence_end() -> None:
    text = "First sentence here. Second sentence is longer and goes on and on and on."
    assert trim_to(text, 40) == "First sentence here."
    assert trim_to("short", 40) == "short"


def test_sms_replies_fit_three_segments_and_whatsapp_1600_characters() -> None:
    long = ("This is a sentence of moderate length. " * 60).strip()
    sms, sms_segments, encoding = shape_reply(long, "sms")
    whatsapp, _, _ = shape_reply(long, "whatsapp")
    assert 400 < len(sms) <= 459 and sms.endswith(".")
    assert (sms_segments, encoding) == (3, "GSM-7")
    _, emoji_segments, encoding = shape_reply("Sure 😀 " * 100, "sms")
    assert (emoji_segments, encoding) == (3, "UCS-2")
    assert 320 < len(whatsapp) <= 1600


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", "opt_out"),
        ("  stop ", "opt_out"),
        ("Unsubscribe", "opt_out"),
        ("start", "opt_in"),
        ("HELP", "help"),
        ("please stop", None),
        ("stopping", None),
        ("Stop.", "opt_out"),  # punctuation and emoji around the word do not hide it
        ("STOP!", "opt_out"),
        ("stop 🙏", "opt_out"),
        ("¡Start!", "opt_in"),
        ("stop, please", None),
        ("S.T.O.P", None),
        ("", None),
        ("!!!", None),
    ],
)
def test_keywords_only_as_the_whole_message(body: str, keyword: str | None) -> None:
    assert keyword_of(body) == keyword


def message(body: str = "hi", **extra: object) -> MessageReceived:
    return MessageReceived(
        message_sid="SM1",
        account_sid="AC1",
        channel="sms",
        participant="+1",
        our_address="+2",
        body=body,
        **extra,
    )  # type: ignore[arg-type]


def test_what_is_not_answered() -> None:
    assert reason_not_to_answer(message("STOP"), False) == "keyword"
    assert reason_not_to_answer(message("hello"), True) == "closed"
    assert reason_not_to_answer(message("   "), False) == "empty"
    assert reason_not_to_answer(message("", media=(Media(url="u"),)), False) is None
    assert (
        reason_not_to_answer(message("", location=Location(latitude=1, longitude=2)), False) is None
    )
    assert reason_not_to_answer(message("hello"), False) is None
    assert reason_not_to_answer(message("Human?"), False) == "human_requested"
    assert reason_not_to_answer(message("a human please"), False) is None
    assert reason_not_to_answer(message("hello"), False, handed_off=True) == "handed_off"
    # Twilio's keywords come first: STOP is never taken for a request for a person.
    assert reason_not_to_answer(message("STOP"), False, handed_off=True) == "keyword"


@pytest.mark.parametrize(
    ("body", "asks"),
    [("agent", True), ("AGENT!", True), ("Operator.", True), ("real person", False), ("", False)],
)
def test_asking_for_a_person_is_one_word(body: str, asks: bool) -> None:
    assert asks_for_human(body) is asks
    assert keyword_of(body) is None  # not a carrier keyword: Twilio does not answer it


def test_handoff_rules() -> None:
    assert handoff_state(None) == "ai"
    assert handoff_state("handed_back") == "ai"
    assert handoff_state("requested") == "requested"
    assert handoff_state("taken_over") == "agent"
    assert refuse_handoff("ai", "taken_over") is None
    assert refuse_handoff("requested", "taken_over") is None
    assert refuse_handoff("agent", "taken_over") is not None
    assert refuse_handoff("agent", "handed_back") is None
    assert refuse_handoff("requested", "handed_back") is not None
    assert refuse_send(closed=False, opted_out=False) is None
    assert "closed" in (refuse_send(closed=True, opted_out=False) or "")
    assert "STOP" in (refuse_send(closed=False, opted_out=True) or "")


def test_per_number_persona_overrides_defaults() -> None:
    defaults = Persona("be nice", "gpt-4o-mini", 300, 0.4)
    numbers = {"+15550001": NumberConfig(system_prompt="be a pizzeria", temperature=0.0)}
    pizzeria = persona_for("whatsapp:+15550001", defaults, numbers)
    assert (pizzeria.system_prompt, pizzeria.model, pizzeria.temperature) == (
        "be a pizzeria",
        "gpt-4o-mini",
        0.0,
    )
    assert persona_for("+15559999", defaults, numbers) == defaults


LIFECYCLE = ["queued", "sending", "sent", "delivered"]


@pytest.mark.parametrize("order", list(itertools.permutations(LIFECYCLE)))
def test_any_order_of_callbacks_ends_delivered(order: tuple[str, ...]) -> None:
    assert fold_statuses("queued", order) == "delivered"


def test_final_states_stay_final_except_read_after_delivered() -> None:
    assert next_status("delivered", "sending") == "delivered"
    assert next_status("delivered", "read") == "read"
    assert next_status("undelivered", "delivered") == "undelivered"
    assert next_status("failed", "read") == "failed"
    assert next_status("read", "delivered") == "read"
    assert next_status("sent", "some_future_status") == "sent"
    assert fold_statuses(None, []) is None


@given(st.lists(st.sampled_from([*LIFECYCLE, "read", "undelivered", "failed"]), max_size=8))
def test_status_never_moves_backwards(seen: list[str]) -> None:
    ranks = {"queued": 1, "sending": 2, "sent": 3}
    status = "queued"
    for incoming in seen:
        new = next_status(status, incoming)
        if status in ranks and new in ranks:
            assert ranks[new] >= ranks[status]
        status = new


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor("a", 1), 2) == ["a", "1"]
    for bad in ("", "!!!", encode_cursor("a"), "eyJ4Ijox"):
        with pytest.raises(BadCursor):
            decode_cursor(bad, 2)


def test_twilio_errors_split_into_retry_and_permanent() -> None:
    assert classify_error(429, 20429, "slow down").kind == "retry"
    assert classify_error(503, None, "unavailable").kind == "retry"
    assert classify_error(None, None, "connection reset").kind == "retry"
    assert classify_error(400, 21211, "invalid To").kind == "failed"
    assert classify_error(400, 21610, "unsubscribed").kind == "failed"
    assert classify_error(500, 63016, "outside the window").kind == "failed"
    assert [backoff_s(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff_s(30) == 60.0


@pytest.mark.parametrize(
    ("cell", "exported"),
    [
        ('=HYPERLINK("http://x.example","hi")', '\'=HYPERLINK("http://x.example","hi")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tindented", "'\tindented"),
        ("+15551230001", "+15551230001"),  # a phone number stays as it is
        ("whatsapp:+15551230001", "whatsapp:+15551230001"),
        ("hello = world", "hello = world"),
        (42, 42),
        (None, None),
    ],
)
def test_exported_cells_never_start_a_formula(cell: object, exported: object) -> None:
    assert spreadsheet_safe(cell) == exported


def test_the_form_a_message_goes_out_in() -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    day = 86_400.0
    template = Template(content_sid="HX" + "b" * 32, body_variable="1", variables={"2": "x"})
    reply = ReplyGenerated(
        in_reply_to=uuid4(),
        inbound_message_sid="SM1",
        inbound_at=now - timedelta(hours=2),
        channel="whatsapp",
        participant="whatsapp:+1",
        our_address="whatsapp:+2",
        body="hello",
        source="ai",
    )
    assert form_for(reply, None, now, day, template) == Form("hello")
    late = reply.model_copy(update={"inbound_at": now - timedelta(hours=25)})
    assert form_for(late, None, now, day, template) == Form(
        "hello", template.content_sid, {"1": "hello", "2": "x"}
    )
    # A later inbound read here reopens the window for an old reply.
    assert form_for(late, now - timedelta(minutes=1), now, day, template) == Form("hello")
    refused = form_for(late, None, now, day, None)
    assert isinstance(refused, Outcome)
    assert (refused.status, refused.error_code) == ("canceled", 63016)
    sms = late.model_copy(update={"channel": "sms"})
    assert form_for(sms, None, now, day, None) == Form("hello")


def test_pacing_gives_each_sender_consecutive_slots() -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    pacing = Pacing(per_second=1.0, by_sender={"MG1": 10.0, "+3": 0.0})
    a, b, c, d, e = (uuid4() for _ in range(5))
    due, free = slots(
        pacing,
        [(a, "+1", 1), (b, "+1", 2), (c, "+1", 1), (d, "MG1", 5), (e, "+3", 9)],
        {"+1": now - timedelta(seconds=5)},
        now,
    )
    second = timedelta(seconds=1)
    assert due == {a: now, b: now + second, c: now + 3 * second, d: now}
    assert free == {"+1": now + 4 * second, "MG1": now + second / 2}
    # A sender's queue already runs ahead of now: new messages go after it.
    later, _ = slots(pacing, [(a, "+1", 1)], {"+1": now + 10 * second}, now)
    assert later == {a: now + 10 * second}


def test_operators_settings_override_the_file_which_overrides_the_environment() -> None:
    defaults = Behaviour(Persona("be nice", "gpt-4o-mini", 300, 0.4), "sorry", 10)
    file = {"+15550001": NumberConfig(model="file-model", max_tokens=100)}
    api = {"+15550001": AiOverrides(model="api-model", history_turns=0, enabled=False)}
    b = behaviour_for("whatsapp:+15550001", defaults, file, api)
    assert b.persona == Persona("be nice", "api-model", 100, 0.4)
    assert (b.fallback_reply, b.history_turns, b.enabled) == ("sorry", 0, False)
    assert behaviour_for("+15550002", defaults, file, api) == defaults
    assert changed_fields(None, AiOverrides(model="x")) == ("model",)
    assert changed_fields(AiOverrides(model="x", enabled=False), AiOverrides(model="x")) == (
        "enabled",
    )
