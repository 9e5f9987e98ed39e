"""Whether a Twilio account sends its messages to this Parley: pure rules, no I/O.

Twilio posts an inbound message to the number's "A message comes in" webhook, unless the
number belongs to a Messaging Service that has its own inbound URL (and does not defer to the
number's). Status callbacks need nothing on the account: Parley names its callback URL on
every message it sends; a Messaging Service-wide status callback elsewhere only receives the
statuses of messages sent without one.
"""

from __future__ import annotations

from dataclasses import dataclass

INBOUND_PATH = "/webhooks/twilio/messages"
STATUS_PATH = "/webhooks/twilio/status"


@dataclass(frozen=True)
class Number:
    sid: str
    phone_number: str
    sms_url: str | None
    sms_method: str | None


@dataclass(frozen=True)
class MessagingService:
    sid: str
    name: str
    inbound_url: str | None
    uses_number_webhooks: bool
    status_callback: str | None


@dataclass(frozen=True)
class Finding:
    subject: str  # what was checked, for a person
    sid: str
    ok: bool
    problem: str | None = None
    fix: str | None = None


def _same(url: str | None, expected: str) -> bool:
    return url is not None and url.rstrip("/") == expected


def check_number(number: Number, public_base: str) -> Finding:
    expected = public_base.rstrip("/") + INBOUND_PATH
    subject = f"number {number.phone_number}"
    if _same(number.sms_url, expected) and (number.sms_method or "POST").upper() == "POST":
        return Finding(subject, number.sid, ok=True)
    where = number.sms_url or "nowhere"
    return Finding(
        subject,
        number.sid,
        ok=False,
        problem=f"incoming messages go to {where} ({number.sms_method or 'POST'})",
        fix=f"set 'A message comes in' to {expected} with HTTP POST",
    )


def check_service(service: MessagingService, public_base: str) -> list[Finding]:
    base = public_base.rstrip("/")
    subject = f"messaging service {service.name}"
    found = []
    if service.uses_number_webhooks or _same(service.inbound_url, base + INBOUND_PATH):
        found.append(Finding(subject, service.sid, ok=True))
    else:
        found.append(
            Finding(
                subject,
                service.sid,
                ok=False,
                problem=f"incoming messages go to {service.inbound_url or 'nowhere'}",
                fix=f"set its Request URL to {base + INBOUND_PATH} (HTTP POST), or let it "
                "use each sender's own webhook",
            )
        )
    if service.status_callback and not _same(service.status_callback, base + STATUS_PATH):
        found.append(
            Finding(
                f"{subject} status callback",
                service.sid,
                ok=False,
                problem=f"statuses of messages sent without a callback go to "
                f"{service.status_callback}",
                fix=f"clear it, or set it to {base + STATUS_PATH}",
            )
        )
    return found


def check(
    numbers: list[Number], services: list[MessagingService], public_base: str
) -> list[Finding]:
    return [check_number(n, public_base) for n in numbers] + [
        finding for s in services for finding in check_service(s, public_base)
    ]
