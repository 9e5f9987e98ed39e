"""Pure decisions of the gateway about inbound email: from an Inbound Parse post (SendGrid's
``multipart/form-data`` fields: ``from``, ``to``, ``subject``, ``text``, ``html``,
``headers``, ``envelope``, attachments as files) to an ``email.received`` event."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

from parley_gateway.core import InvalidWebhook
from parley_shared.events import EmailReceived, Envelope, new_envelope
from parley_shared.identity import conversation_key, email_event_id

# Emails belong to no Twilio account: their threads and participants' keys are under this one.
EMAIL_ACCOUNT = "email"
MAX_BODY_CHARS = 100_000
_ADDRESS = re.compile(r"^[^@\s<>\x00]{1,64}@[^@\s<>\x00]{1,255}$")

Fields = dict[str, list[str]]


def parse_multipart(content_type: str, body: bytes) -> tuple[Fields, int]:
    """The form's text fields (name -> values) and how many files it carried."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise InvalidWebhook("body is not a multipart/form-data post (is the boundary set?)")
    fields: Fields = {}
    files = 0
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise InvalidWebhook("a form part has no name")
        if part.get_filename() is not None:
            files += 1
            continue
        raw = part.get_payload(decode=True)
        try:
            value = raw.decode("utf-8") if isinstance(raw, bytes) else ""
        except UnicodeDecodeError as exc:
            raise InvalidWebhook(f"field {name!r} is not valid UTF-8") from exc
        if "\x00" in value or "\x00" in name:
            raise InvalidWebhook(f"field {name!r} contains a NUL character")
        fields.setdefault(name, []).append(value)
    return fields, files


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def text_of_html(html: str) -> str:
    reader = _Text()
    reader.feed(html)
    return re.sub(r"\n\s*\n+", "\n\n", "".join(reader.parts)).strip()


def _one(fields: Fields, name: str) -> str:
    values = fields.get(name)
    return values[-1].strip() if values else ""


def _address(value: str, what: str) -> str:
    address = parseaddr(value)[1].strip().lower()
    if not _ADDRESS.fullmatch(address):
        raise InvalidWebhook(f"{what} {value!r} is not an email address")
    return address


def _envelope(fields: Fields) -> tuple[str, list[str]]:
    """The SMTP envelope's sender and recipients, when the post carries them."""
    raw = _one(fields, "envelope")
    if not raw:
        return "", []
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidWebhook(f"envelope is not JSON: {exc.msg}") from exc
    if not isinstance(document, dict):
        raise InvalidWebhook("envelope is not a JSON object")
    sender, recipients = document.get("from") or "", document.get("to") or []
    if not isinstance(sender, str) or not isinstance(recipients, list):
        raise InvalidWebhook("envelope must hold a 'from' string and a 'to' list")
    return sender, [r for r in recipients if isinstance(r, str)]


def email_event(fields: Fields, attachments: int, received_at: datetime) -> Envelope:
    envelope_from, envelope_to = _envelope(fields)
    sender = _one(fields, "from")
    if not sender and not envelope_from:
        raise InvalidWebhook("missing required field from")
    participant = _address(envelope_from or sender, "from")
    recipients = envelope_to or [a for _, a in getaddresses([_one(fields, "to")]) if a]
    if not recipients:
        raise InvalidWebhook("missing required field to")
    our_address = _address(recipients[0], "to")
    headers = HeaderParser(policy=policy.default).parsestr(_one(fields, "headers"))
    message_id = str(headers.get("Message-ID") or "").strip()
    if not message_id:
        # No id to dedupe by: what was posted names it, so a retried post is still one.
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        message_id = f"<sha256:{digest[:40]}@parley>"
    name = parseaddr(sender)[0].strip() or None
    text = _one(fields, "text") or text_of_html(_one(fields, "html"))
    payload = EmailReceived(
        message_id=message_id[:998],
        participant=participant,
        our_address=our_address,
        sender_name=name,
        subject=_one(fields, "subject")[:998],
        body=text[:MAX_BODY_CHARS],
        attachments=attachments,
        params=fields,
    )
    return new_envelope(
        payload,
        event_id=email_event_id(payload.message_id),
        conversation_key=conversation_key(
            account_sid=EMAIL_ACCOUNT,
            our_endpoint=our_address,
            participant=participant,
            channel="email",
        ),
        account_sid=EMAIL_ACCOUNT,
        occurred_at=received_at,
    )
