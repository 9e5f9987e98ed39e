"""Test helpers: serve an ASGI app for real, sign webhooks like Twilio, read topics."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Mapping
from urllib.parse import urlencode

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from nacl.signing import SigningKey
from twilio.request_validator import RequestValidator

from parley_shared.settings import BusSettings
from parley_shared.topics import Topics

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"


def message_sid() -> str:
    return "SM" + secrets.token_hex(16)


def inbound_params(**overrides: str) -> dict[str, str]:
    params = {
        "MessageSid": message_sid(),
        "AccountSid": ACCOUNT_SID,
        "From": "+15551230001",
        "To": "+15557654321",
        "Body": "Hello there",
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    params["SmsSid"] = params["SmsMessageSid"] = params["MessageSid"]
    params.update(overrides)
    return params


def signed(url: str, params: Mapping[str, str], token: str = AUTH_TOKEN) -> dict[str, str]:
    """Headers of a form post signed the way Twilio signs it."""
    return {
        "X-Twilio-Signature": RequestValidator(token).compute_signature(url, dict(params)),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def form(params: Mapping[str, str]) -> str:
    return urlencode(params)


async def read_topic(
    settings: BusSettings,
    topic: str,
    *,
    expect: int,
    timeout_s: float = 10.0,
    settle_s: float = 0.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the start until ``expect`` records came (then ``settle_s`` more)."""
    # Manual assignment, no group: a group join would cost a session timeout per read.
    name = Topics(settings.kafka_topic_prefix).name(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = consumer.partitions_for_topic(name)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(name) or set()
        assignment = [TopicPartition(name, p) for p in partitions]
        if not assignment:
            return records
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline and len(records) < expect:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        settle_until = loop.time() + settle_s
        while loop.time() < settle_until:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


# Telnyx signs its webhooks with an Ed25519 key of its own; the gateway has the public half.
TELNYX_KEY = SigningKey(b"telnyx-test-signing-key-32-bytes")
TELNYX_PUBLIC_KEY = base64.b64encode(bytes(TELNYX_KEY.verify_key)).decode()


def telnyx_signed(body: bytes, key: SigningKey = TELNYX_KEY, age_s: float = 0) -> dict[str, str]:
    """The headers Telnyx sends with ``body``: its signature over ``timestamp|body``."""
    timestamp = str(int(time.time() - age_s))
    signature = key.sign(timestamp.encode() + b"|" + body).signature
    return {
        "Content-Type": "application/json",
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "telnyx-timestamp": timestamp,
    }
