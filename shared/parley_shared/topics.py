"""Topic names. A prefix lets several isolated Parleys (or test runs) share one broker."""

from __future__ import annotations

from dataclasses import dataclass

MESSAGE_RECEIVED = "message.received"
REPLY_GENERATED = "reply.generated"
MESSAGE_SENT = "message.sent"
STATUS_UPDATED = "status.updated"
# Operator decisions (close/reopen) are state changes of their own, so they get a topic.
CONVERSATION_CHANGED = "conversation.changed"
# Messages operators asked the sender to send (agents' messages), beside the AI's replies.
MESSAGE_REQUESTED = "message.requested"
# Operators' settings changes (how the AI answers per number), so a rebuild knows them too.
SETTINGS_CHANGED = "settings.changed"
# Tenants, the numbers they own and their API tokens (digests only): every API scopes by them.
TENANTS_CHANGED = "tenants.changed"
# Participants erased (their keys deleted) and tenants' retention applied, so every
# projection forgets them too.
PARTICIPANTS_CHANGED = "participants.changed"
# Voice calls' status callbacks and inbound emails: contacts beside messages, in the same
# threads (calls) and analytics, answered by no one unless configured.
CALL_UPDATED = "call.updated"
EMAIL_RECEIVED = "email.received"

ALL = (
    MESSAGE_RECEIVED,
    REPLY_GENERATED,
    MESSAGE_SENT,
    STATUS_UPDATED,
    CONVERSATION_CHANGED,
    MESSAGE_REQUESTED,
    SETTINGS_CHANGED,
    TENANTS_CHANGED,
    PARTICIPANTS_CHANGED,
    CALL_UPDATED,
    EMAIL_RECEIVED,
)
DEAD_LETTER_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    def name(self, topic: str) -> str:
        return f"{self.prefix}{topic}"

    def dead_letter(self, topic: str) -> str:
        return f"{self.name(topic)}{DEAD_LETTER_SUFFIX}"

    def logical(self, physical: str) -> str:
        """The contract name of a physical topic name."""
        return physical.removeprefix(self.prefix)

    def every(self) -> list[str]:
        return [self.name(t) for t in ALL] + [self.dead_letter(t) for t in ALL]
