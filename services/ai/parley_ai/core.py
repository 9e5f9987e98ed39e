"""Pure decisions of the ai service: whether to answer, with which context, how long."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict

from parley_shared.events import AiOverrides, Channel, MessageReceived
from parley_shared.identity import bare_number
from parley_shared.keywords import HUMAN, asks_human, keyword_in
from parley_shared.sealing import ERASED
from parley_shared.sms import MAX_BODY, Encoding, fit_segments, segments, trim_to

SMS_TARGET = 320
# What an SMS reply may take at most, whatever the model wrote (three GSM-7 segments hold 459
# characters, three UCS-2 ones 201).
SMS_MAX_SEGMENTS = 3


class NumberConfig(AiOverrides):
    """A number's defaults from the AI_NUMBER_CONFIG file (strict: a typo is an error)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class Persona:
    system_prompt: str
    model: str
    max_tokens: int
    temperature: float


@dataclass(frozen=True)
class Behaviour:
    """Everything about how the AI answers messages to one number."""

    persona: Persona
    fallback_reply: str
    history_turns: int
    enabled: bool = True


def behaviour_for(
    our_address: str, defaults: Behaviour, *layers: Mapping[str, AiOverrides]
) -> Behaviour:
    """The defaults, overridden by each layer's settings for this number in turn (the file's,
    then the operators'); a layer is keyed by bare number."""
    merged: dict[str, Any] = {}
    for layer in layers:
        config = layer.get(bare_number(our_address)) or layer.get(our_address)
        if config is not None:
            merged.update(config.model_dump(exclude_none=True))
    if not merged:
        return defaults
    persona = defaults.persona
    return Behaviour(
        persona=Persona(
            system_prompt=merged.get("system_prompt", persona.system_prompt),
            model=merged.get("model", persona.model),
            max_tokens=merged.get("max_tokens", persona.max_tokens),
            temperature=merged.get("temperature", persona.temperature),
        ),
        fallback_reply=merged.get("fallback_reply", defaults.fallback_reply),
        history_turns=merged.get("history_turns", defaults.history_turns),
        enabled=merged.get("enabled", defaults.enabled),
    )


def persona_for(our_address: str, defaults: Persona, numbers: Mapping[str, AiOverrides]) -> Persona:
    return behaviour_for(our_address, Behaviour(defaults, "", 0), numbers).persona


def changed_fields(before: AiOverrides | None, after: AiOverrides) -> tuple[str, ...]:
    """Names of the settings a new version changes, for the audit trail."""
    old = (before or AiOverrides()).model_dump()
    return tuple(name for name, value in after.model_dump().items() if old.get(name) != value)


Skip = Literal[
    "keyword",
    "human_requested",
    "erased",
    "ai_disabled",
    "opted_out",
    "closed",
    "handed_off",
    "empty",
]


def reason_not_to_answer(
    message: MessageReceived,
    conversation_closed: bool,
    opted_out: bool = False,
    handed_off: bool = False,
    human: frozenset[str] = HUMAN,
    enabled: bool = True,
) -> Skip | None:
    if keyword_in(message) is not None:
        return "keyword"  # Twilio answers STOP/START/HELP itself.
    if asks_human(message, human):
        return "human_requested"  # an operator answers: this message and what follows
    if message.participant == ERASED:
        return "erased"  # the participant was forgotten: nothing to answer, no one to send to
    if not enabled:
        return "ai_disabled"  # an operator turned the AI off for this number
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
