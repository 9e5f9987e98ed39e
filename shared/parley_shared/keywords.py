"""Carrier keywords (opt-out, opt-in, help), matched only when they are the whole message,
give or take punctuation and emoji around the word ("Stop.", "STOP!", "stop 🙏")."""

from __future__ import annotations

import re
from typing import Literal

from parley_shared.events import Intent, MessageReceived

Keyword = Literal["opt_out", "opt_in", "help"]

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN = frozenset({"START", "UNSTOP", "YES"})
HELP = frozenset({"HELP", "INFO"})
# A participant asking for a person: the AI stops answering and an operator is asked to take
# over. Not a carrier keyword (Twilio does not answer these).
HUMAN = frozenset({"HUMAN", "AGENT", "OPERATOR", "PERSON", "REPRESENTATIVE"})


# One word, with anything but letters and digits around it.
_ONE_WORD = re.compile(r"[\W_]*([^\W_]+)[\W_]*")


def keyword_of(body: str) -> Keyword | None:
    match = _ONE_WORD.fullmatch(body)
    if match is None:
        return None
    word = match.group(1).upper()
    if word in OPT_OUT:
        return "opt_out"
    if word in OPT_IN:
        return "opt_in"
    if word in HELP:
        return "help"
    return None


def asks_for_human(body: str, words: frozenset[str] = HUMAN) -> bool:
    match = _ONE_WORD.fullmatch(body)
    return match is not None and match.group(1).upper() in words


def human_words(extra: str) -> frozenset[str]:
    """``HUMAN`` and the comma-separated ``extra`` words (HANDOFF_KEYWORDS)."""
    return HUMAN | {word.strip().upper() for word in extra.split(",") if word.strip()}


def intent_of(body: str, words: frozenset[str] = HUMAN) -> Intent:
    """What a message asks for (the gateway decides it once; ``MessageReceived.intent``)."""
    keyword = keyword_of(body)
    if keyword is not None:
        return keyword
    return "human" if asks_for_human(body, words) else "none"


def keyword_in(message: MessageReceived) -> Keyword | None:
    """The carrier keyword a message is, as the gateway decided (from its body for messages
    logged before the gateway decided)."""
    match message.intent or intent_of(message.body):
        case "opt_out" | "opt_in" | "help" as keyword:
            return keyword
        case _:
            return None


def asks_human(message: MessageReceived, words: frozenset[str] = HUMAN) -> bool:
    """Whether a message asks for a person, as the gateway decided (from its body and
    ``words`` for messages logged before the gateway decided)."""
    return (message.intent or intent_of(message.body, words)) == "human"
