"""The gateway's provider port: what a messaging provider's webhooks need from Parley.

A provider is one adapter: it checks a webhook's signature and turns it into the event it
stands for (``provider`` set on it), and says what its webhooks post and expect back. The
gateway around it is the same for all: body limits, publishing, a 200 only once the broker
acknowledged, 503 when it cannot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from parley_shared.events import Envelope


@dataclass(frozen=True)
class Webhook:
    # The URL the provider called, as it signed it (the public base URL, not ours).
    url: str
    # Header names lower-cased.
    headers: Mapping[str, str]
    body: bytes
    received_at: datetime


class Refused(Exception):
    """The webhook's signature is missing or wrong (403); the message says which."""


class Provider(Protocol):
    name: str
    # What its webhooks post (415 for anything else).
    content_type: str
    # What it expects back on success: body and media type.
    answer: tuple[str, str]
    # The largest body it posts; None: the gateway's MAX_BODY_BYTES.
    max_body_bytes: int | None

    def event_of(self, kind: str, webhook: Webhook) -> Envelope | None:
        """The event ``webhook`` (posted to this provider's ``kind`` URL) stands for, None
        for what Parley does not keep. Raises ``Refused`` for a bad signature and
        ``InvalidWebhook`` for a body it cannot read."""
        ...
