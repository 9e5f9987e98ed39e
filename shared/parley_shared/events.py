"""The event contract every Parley service speaks.

An event on the wire is one JSON object: an envelope (identity, type, version, time, keys,
correlation) around a payload whose shape the ``event_type`` and ``schema_version`` name.
The wire name is the explicit ``EVENT_TYPE`` string of a payload class, never its Python path,
so code can be moved or renamed without breaking the log.

Readers are tolerant: unknown fields from a newer producer are ignored, and older schema
versions are upcast step by step to the current one before validation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, ClassVar, Generic, Literal, cast
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
)
from typing_extensions import TypeVar

from parley_shared.tracing import current_traceparent

Channel = Literal["sms", "whatsapp"]
Intent = Literal["opt_out", "opt_in", "help", "human", "none"]
NO_NUL = r"^[^\x00]*$"
ReplySource = Literal["ai", "fallback", "offline"]
# What a call status means for a conversation: ringing or talking, over after someone
# answered, or over without anyone answering (busy, no answer, canceled, failed).
CallOutcome = Literal["started", "completed", "missed"]
# Which messaging provider a message came or goes through ("twilio", "telnyx"): a free name,
# so that a provider added later is no value an older reader refuses.
ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,32}$")]


class Payload(BaseModel):
    """Base of every payload: frozen, and ignores fields it does not know."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    EVENT_TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1


class Media(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    url: str
    content_type: str | None = None


class Location(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    latitude: float
    longitude: float
    address: str | None = None
    label: str | None = None


class MessageReceived(Payload):
    """An inbound SMS or WhatsApp message, as its provider posted it to the gateway."""

    EVENT_TYPE: ClassVar[str] = "message.received"

    # Absent on events logged before a second provider existed: all Twilio's.
    provider: ProviderName = "twilio"
    # The provider's message id and account (Twilio's SIDs; Telnyx's message id and
    # organization id).
    message_sid: str
    account_sid: str
    messaging_service_sid: str | None = None
    channel: Channel
    # Addresses exactly as Twilio wrote them ("+1555…" or "whatsapp:+1555…").
    participant: str
    our_address: str
    body: str = ""
    media: tuple[Media, ...] = ()
    num_segments: int | None = None
    profile_name: str | None = None
    wa_id: str | None = None
    message_type: str | None = None
    location: Location | None = None
    button_text: str | None = None
    button_payload: str | None = None
    # Every parameter Twilio sent, unknown ones included, so nothing is lost to a schema.
    params: dict[str, list[str]] = Field(default_factory=dict)
    # What the message asks for, decided once by the gateway from the body: a carrier
    # keyword, a person ("human"), or nothing ("none"). In clear on the log, so opt-outs and
    # handoff requests survive the body's erasure; None on events logged before it existed
    # (readers decide from the body then: ``keywords.keyword_in``).
    intent: Intent | None = None


class StatusUpdated(Payload):
    """A delivery status callback for a message Parley sent."""

    EVENT_TYPE: ClassVar[str] = "status.updated"

    provider: ProviderName = "twilio"
    message_sid: str
    account_sid: str
    status: str
    channel: Channel
    participant: str
    our_address: str
    messaging_service_sid: str | None = None
    error_code: int | None = None
    raw_dlr_done_date: str | None = None
    params: dict[str, list[str]] = Field(default_factory=dict)


class ReplyGenerated(Payload):
    """The text Parley will send back for one inbound message."""

    EVENT_TYPE: ClassVar[str] = "reply.generated"

    # Through which provider it goes: the inbound's.
    provider: ProviderName = "twilio"
    in_reply_to: UUID
    inbound_message_sid: str
    # When the answered message arrived: places the reply in its conversation on any replay.
    inbound_at: AwareDatetime
    channel: Channel
    participant: str
    our_address: str
    messaging_service_sid: str | None = None
    body: str
    source: ReplySource
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    segments: int = 1
    encoding: Literal["GSM-7", "UCS-2"] = "GSM-7"


class MessageSent(Payload):
    """The outcome of handing one reply to Twilio: accepted with a SID, or refused."""

    EVENT_TYPE: ClassVar[str] = "message.sent"

    provider: ProviderName = "twilio"
    reply_event_id: UUID
    channel: Channel
    participant: str
    our_address: str
    body: str
    # The inbound message the reply answers, so a reader that sees this event before the
    # reply itself (another topic) still places it in the right conversation.
    in_reply_to: UUID | None = None
    inbound_at: AwareDatetime | None = None
    message_sid: str | None = None
    status: str
    error_code: int | None = None
    error_message: str | None = None
    segments: int | None = None
    attempts: int = 1
    # For an operator's message (no inbound answered): when it was requested, which places it
    # in its conversation on any replay, as ``inbound_at`` does for a reply.
    requested_at: AwareDatetime | None = None
    # Set when it went out as a WhatsApp template (outside the 24-hour window).
    content_sid: str | None = None


class OutboundRequested(Payload):
    """An operator asked for a message to be sent to a participant (an agent's message)."""

    EVENT_TYPE: ClassVar[str] = "outbound.requested"

    provider: ProviderName = "twilio"
    conversation_id: UUID
    channel: Channel
    participant: str
    our_address: str
    messaging_service_sid: str | None = None
    body: str
    media_urls: tuple[str, ...] = ()
    # A WhatsApp template (Twilio Content API): sent instead of ``body``, inside the 24-hour
    # window or not.
    content_sid: str | None = None
    content_variables: dict[str, str] = Field(default_factory=dict)
    # Who sent it: the operator's name as the API was told it.
    agent: str


class HandoffChanged(Payload):
    """A human took a conversation over from the AI, or handed it back."""

    EVENT_TYPE: ClassVar[str] = "handoff.changed"

    conversation_id: UUID
    action: Literal["taken_over", "handed_back"]
    channel: Channel
    participant: str
    our_address: str
    agent: str


class CallUpdated(Payload):
    """A voice call's status callback: a call between a participant's number and ours, which
    joins that number's SMS thread. One event per status of a call."""

    EVENT_TYPE: ClassVar[str] = "call.updated"

    provider: ProviderName = "twilio"
    call_sid: str
    account_sid: str
    direction: Literal["inbound", "outbound"]
    # The other party's number and ours, whichever called.
    participant: str
    our_address: str
    # The provider's status as it wrote it, lower-case ("ringing", "no-answer", ...).
    status: str
    # What it means, decided once by the gateway (``parley_gateway.core.outcome_of``).
    outcome: CallOutcome
    # Seconds the call lasted, on the callback that ends it.
    duration_s: int | None = Field(None, ge=0)
    params: dict[str, list[str]] = Field(default_factory=dict)


class EmailReceived(Payload):
    """An email sent to one of our addresses (an inbound-parse webhook). A thread of its own
    per sender and address of ours."""

    EVENT_TYPE: ClassVar[str] = "email.received"

    provider: ProviderName = "sendgrid"
    # The Message-ID header (or a digest of the post when there is none).
    message_id: str
    # The sender's address, lower-case, and ours it was sent to.
    participant: str
    our_address: str
    sender_name: str | None = None
    subject: str = ""
    # The text part (else the HTML part with its tags removed).
    body: str = ""
    attachments: int = Field(0, ge=0)
    # Every form field posted except attachments' contents, so nothing is lost to a schema.
    params: dict[str, list[str]] = Field(default_factory=dict)


class AiOverrides(BaseModel):
    """How the AI answers for one of our numbers; an unset field takes the service's default."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # PostgreSQL text and jsonb cannot hold NUL: such values are refused, not stored.
    system_prompt: str | None = Field(None, min_length=1, max_length=20_000, pattern=NO_NUL)
    model: str | None = Field(None, min_length=1, max_length=200, pattern=NO_NUL)
    max_tokens: int | None = Field(None, ge=16, le=4096)
    temperature: float | None = Field(None, ge=0, le=2)
    fallback_reply: str | None = Field(None, min_length=1, max_length=1600, pattern=NO_NUL)
    history_turns: int | None = Field(None, ge=0, le=100)
    enabled: bool | None = None


class AiSettingsChanged(Payload):
    """An operator set how the AI answers for one of our numbers (a new version of it)."""

    EVENT_TYPE: ClassVar[str] = "ai.settings.changed"

    number: str  # bare E.164: one number's SMS and WhatsApp alike
    version: int = Field(ge=1)
    settings: AiOverrides
    changed: tuple[str, ...]
    actor: str


class ConversationChanged(Payload):
    """An operator closed or reopened a conversation."""

    EVENT_TYPE: ClassVar[str] = "conversation.changed"

    conversation_id: UUID
    action: Literal["closed", "reopened"]
    channel: Channel
    participant: str
    our_address: str
    actor: str = "operator"


class TenantChanged(Payload):
    """A tenant (a business) was created or changed: what it is called, which of our numbers
    and Messaging Services are its own (a new version replaces the whole list)."""

    EVENT_TYPE: ClassVar[str] = "tenant.changed"

    tenant_id: UUID
    version: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    numbers: tuple[str, ...]  # bare E.164: a number's SMS and WhatsApp alike
    messaging_services: tuple[str, ...]
    actor: str
    # Days a message's personal data is kept (``retention``); None: for as long as the log.
    retention_days: int | None = Field(None, ge=1, le=36_500)


class TokenIssued(Payload):
    """An API token for a tenant. Only its SHA-256 digest is ever written anywhere."""

    EVENT_TYPE: ClassVar[str] = "tenant.token.issued"

    token_id: UUID
    tenant_id: UUID
    scope: Literal["read", "write"]
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    label: str = Field(max_length=200, pattern=NO_NUL)
    actor: str


class TokenRevoked(Payload):
    EVENT_TYPE: ClassVar[str] = "tenant.token.revoked"

    token_id: UUID
    tenant_id: UUID
    actor: str


class ParticipantErased(Payload):
    """A participant's key was deleted (right to be forgotten): every event sealed under
    ``subject`` now reads "[erased]", and projections forget what they already opened."""

    EVENT_TYPE: ClassVar[str] = "participant.erased"

    subject: UUID
    actor: str


class RetentionApplied(Payload):
    """A tenant's retention reached these conversations: what their participants wrote or
    were sent before ``before`` is forgotten everywhere, as an erasure forgets it."""

    EVENT_TYPE: ClassVar[str] = "retention.applied"

    tenant_id: UUID
    before: datetime
    conversation_keys: tuple[str, ...] = Field(min_length=1, max_length=1000)
    actor: str


PAYLOAD_TYPES: dict[str, type[Payload]] = {
    cls.EVENT_TYPE: cls
    for cls in (
        MessageReceived,
        StatusUpdated,
        ReplyGenerated,
        MessageSent,
        ConversationChanged,
        OutboundRequested,
        HandoffChanged,
        AiSettingsChanged,
        TenantChanged,
        TokenIssued,
        TokenRevoked,
        ParticipantErased,
        RetentionApplied,
        CallUpdated,
        EmailReceived,
    )
}

# (event_type, from_version) -> function that rewrites a payload dict to from_version + 1.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


# Covariant: events are frozen, so an Envelope[MessageReceived] is an Envelope[Payload].
P = TypeVar("P", bound=Payload, default=Payload, covariant=True)


class Envelope(BaseModel, Generic[P]):
    """An event. ``Envelope[MessageReceived]`` is one whose payload is known to be that type
    (handlers get it so from the dispatcher); a bare ``Envelope`` holds any payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: UUID
    event_type: str
    schema_version: int
    occurred_at: AwareDatetime
    conversation_key: str
    account_sid: str
    correlation_id: UUID
    causation_id: UUID | None = None
    # The W3C trace context the event was created in (CloudEvents' tracing extension): it
    # outlives Kafka headers when the event waits in an inbox or an outbox. Not part of what
    # the event means; absent when nothing was traced.
    traceparent: str | None = None
    # Events that carry a participant's personal data: whose they are (a random id of the
    # participant's key, in clear, so rows can be found by it once the data is gone) and, on
    # the log, those fields encrypted (base64url of nonce + AES-GCM ciphertext of them as
    # JSON; the payload holds empty values meanwhile). Consumers get them opened
    # (``Keyring.open``: ``sealed`` None again), or "[erased]" once the key is deleted.
    subject: UUID | None = None
    sealed: str | None = None
    payload: SerializeAsAny[P]

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class DecodeError(ValueError):
    """Raised when bytes on a topic are not an event this reader can understand."""


class NewerVersion(DecodeError):
    """A valid-looking event of a version this reader does not know yet: written by a newer
    release (a rolling deploy is under way). Not poison: it must wait for a newer reader."""


Q = TypeVar("Q", bound=Payload)


def new_envelope(
    payload: Q,
    *,
    event_id: UUID,
    conversation_key: str,
    account_sid: str,
    occurred_at: datetime,
    correlation_id: UUID | None = None,
    causation_id: UUID | None = None,
    traceparent: str | None = None,
) -> Envelope[Q]:
    """An event in the current span's trace, else in ``traceparent``'s."""
    return Envelope(
        event_id=event_id,
        event_type=payload.EVENT_TYPE,
        schema_version=payload.SCHEMA_VERSION,
        occurred_at=occurred_at,
        conversation_key=conversation_key,
        account_sid=account_sid,
        correlation_id=correlation_id or event_id,
        causation_id=causation_id,
        traceparent=current_traceparent() or traceparent,
        payload=payload,
    )


def caused_by(cause: Envelope, payload: Q, *, event_id: UUID, occurred_at: datetime) -> Envelope[Q]:
    """An event that follows from ``cause``: same conversation, participant (``subject``),
    correlation chain and (when it is made outside any span, as outcomes recorded in a group
    are) trace."""
    effect = new_envelope(
        payload,
        event_id=event_id,
        conversation_key=cause.conversation_key,
        account_sid=cause.account_sid,
        occurred_at=occurred_at,
        correlation_id=cause.correlation_id,
        causation_id=cause.event_id,
        traceparent=cause.traceparent,
    )
    if cause.subject is None:
        return effect
    return effect.model_copy(update={"subject": cause.subject})


def encode(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode("utf-8")


class _Head(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_type: str = ""
    schema_version: StrictInt = 0


@cache
def _typed(payload_type: type[Payload]) -> type[Envelope]:
    envelope: type[Envelope] = cast(Any, Envelope)[payload_type]
    return envelope


def decode(raw: bytes) -> Envelope:
    # The common case, an event of the current version, is parsed and validated in one pass
    # by pydantic-core; anything else takes the careful path, which upcasts or says why not.
    try:
        head = _Head.model_validate_json(raw)
        payload_type = PAYLOAD_TYPES.get(head.event_type)
        if payload_type is not None and head.schema_version == payload_type.SCHEMA_VERSION:
            return _typed(payload_type).model_validate_json(raw)
    except ValidationError:
        pass
    return _decode_document(raw)


def _decode_document(raw: bytes) -> Envelope:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise DecodeError("not a JSON object")
    event_type = document.get("event_type")
    if not isinstance(event_type, str) or event_type not in PAYLOAD_TYPES:
        raise DecodeError(f"unknown event type {event_type!r}")
    payload_type = PAYLOAD_TYPES[event_type]
    version = document.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise DecodeError(f"bad schema version {version!r}")
    if version > payload_type.SCHEMA_VERSION:
        raise NewerVersion(
            f"{event_type} v{version} is newer than this reader (v{payload_type.SCHEMA_VERSION})"
        )
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise DecodeError("payload is not an object")
    while version < payload_type.SCHEMA_VERSION:
        upcast = UPCASTERS.get((event_type, version))
        if upcast is None:
            raise DecodeError(f"no upcaster for {event_type} v{version}")
        payload = upcast(payload)
        version += 1
    try:
        return Envelope.model_validate(
            {
                **document,
                "schema_version": version,
                "payload": payload_type.model_validate(payload),
            }
        )
    except ValidationError as exc:
        raise DecodeError(f"invalid {event_type}: {exc.error_count()} error(s): {exc}") from exc
