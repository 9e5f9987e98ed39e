"""Fixtures of the integration tests: a pool on a fresh database, the Twilio sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from parley_dev import sandbox
from parley_dev.serve import serving
from parley_sender.twilio_client import TwilioMessaging
from parley_shared.db import Pool, create_pool
from tests.helpers import ACCOUNT_SID, AUTH_TOKEN


@pytest.fixture
async def pool(database: str) -> AsyncIterator[Pool]:
    db = await create_pool(database)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[sandbox.Sandbox, TwilioMessaging]]:
    box = sandbox.Sandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, lifecycle=[])
    async with serving(sandbox.create_app(box)) as url:
        client = TwilioMessaging(ACCOUNT_SID, AUTH_TOKEN, url, 10)
        try:
            yield box, client
        finally:
            await client.close()
