"""Pure decisions of the ai service: whether to answer, with which context, how long."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from parley_shared.events import Channel, MessageReceived
from parley_shared.identity import bare_number
from parley_shared.keywords import HUMAN, asks_for_human, keyword_of
from parley_shared.sms import MAX_BODY, Encoding, fit_segments, segments, trim_to

SMS_TARGET = 320
# What an SMS reply may take at most, whatever the model wrote (three GSM-7 segments hold 459
# characters, three UCS-2 ones 201).
SMS_MAX_SEGMENTS = 3


class NumberConfig(BaseModel):
    """Settings of one of our numbers; unset fields fall back to the service defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system_prompt: str | None = None
    model: str | None = None
    max_tokens: int | None = Field(None, ge=16, le=4096)
    temperature: float | None = Field(None, ge=0, le=2)


@dataclass(frozen=True)
class Persona:
    system_prompt: str
    model: str
    max_tokens: int
    temperature: float


def persona_for(our_address: str, defaults: Persona, numbers: dict[str, NumberConfig]) -> Persona:
    config = numbers.get(bare_number(our_address)) or numbers.get(our_address)
    if config is None:
        return defaults
    return Persona(
        system_prompt=config.system_prompt or defaults.system_prompt,
        model=config.model or defaults.model,
        max_tokens=config.max_tokens or defaults.max_tokens,
        temperature=defaults.temperature if config.temperature is None else config.temperature,
    )


Skip = Literal["keyword", "human_requested", "opted_out", "closed", "handed_off", "empty"]


def reason_not_to_answer(
    message: MessageReceived,
    conversation_closed: bool,
    opted_out: bool = False,
    handed_off: bool = False,
    human: frozenset[str] = HUMAN,
) -> Skip | None:
    if keyword_of(message.body) is not None:
        return "keyword"  # Twilio answers STOP/START/HELP itself.
    if asks_for_human(message.body, human):
        return "human_requested"  # an operator answers: this message and what follows
    if opted_out:
        return "opted_out"  # nothing may be sent to them; do not pay for a reply
    if conversation_closed:
        return "closed"
    if handed_off:
        return "handed_off"  # a person has the conversation (or was asked for)
    if not message.body.strip() and not message.media and message.location is None:
        return "empty"
    return None


def user_text(message: MessageReceived) -> str:
    """What the model sees of an inbound message, media and location included."""
    parts = [message.body.strip()] if message.body.strip() else []
    if message.location is not None:
        where = message.location.label or message.location.address or ""
        parts.append(
            f"[shared a location: {message.location.latitude}, {message.location.longitude}"
            f"{' ' + where if where else ''}]"
        )
    for media in message.media:
        parts.append(f"[sent an attachment: {media.content_type or 'file'}]")
    return "\n".join(parts)


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


def chat_messages(
    persona: Persona, channel: Channel, history: list[Turn], latest: str
) -> list[dict[str, str]]:
    limit = SMS_TARGET if channel == "sms" else MAX_BODY
    system = f"{persona.system_prompt}\nKeep every answer under {limit} characters."
    return [
        {"role": "system", "content": system},
        *({"role": t.role, "content": t.content} for t in history),
        {"role": "user", "content": latest},
    ]


def shape_reply(text: str, channel: Channel) -> tuple[str, int, Encoding]:
    """Fit the model's text to the channel; returns (body, segments, encoding)."""
    body = fit_segments(text, SMS_MAX_SEGMENTS) if channel == "sms" else trim_to(text, MAX_BODY)
    count, encoding = segments(body)
    return body, count, encoding
