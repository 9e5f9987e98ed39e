"""How fast the operators' console opens with many conversations: ``./dev bench console``.

Loads ``--conversations`` conversations (a message and its reply each, through the
conversation service's own projection), serves the conversation service, and opens the
console in Debian's chromium with a signed-in session, timing from navigation until the inbox
lists conversations (interactive), and the inbox's API call alone. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from playwright.async_api import async_playwright
from replay import message_events

from parley_conversation.app import create_app
from parley_conversation.service import ConversationService
from parley_conversation.settings import ConversationSettings
from parley_conversation.tables import MIGRATIONS, SERVICE
from parley_dev.infra import scratch
from parley_dev.serve import serving
from parley_shared.db import create_pool
from parley_shared.migrations import migrate

TOKEN = "bench-token-123"  # noqa: S105 - a throwaway local server
CHROMIUM = "/usr/bin/chromium"


async def load(database: str, conversations: int) -> None:
    pool = await create_pool(database)
    try:
        await migrate(pool, SERVICE, MIGRATIONS)
        projection = ConversationService(pool, None)
        rng = random.Random(7)
        start = datetime.now(UTC) - timedelta(days=30)
        batch = []
        # Each message from a random participant, as in ``replay``: a few write twice.
        for i in range(conversations):
            # The events of one message are received, reply, sent, statuses: two suffice.
            batch += [
                event for _, event in message_events(i, rng, start, 2_592_000 / conversations)[:2]
            ]
            if len(batch) >= 2000:
                await projection.handle_batch(batch)
                batch = []
        if batch:
            await projection.handle_batch(batch)
        count = await pool.fetchval("SELECT count(*) FROM conversation_conversations")
        print(f"{count} conversations loaded")
    finally:
        await pool.close()


async def main(args: argparse.Namespace) -> None:
    with scratch("parley-bench") as (kafka, database):
        await load(database, args.conversations)
        settings = ConversationSettings(
            kafka_bootstrap_servers=kafka,
            kafka_topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
            database_url=database,
            api_token=TOKEN,
        )
        async with serving(create_app(settings)) as url, httpx.AsyncClient() as http:
            api = []
            for _ in range(args.runs):
                began = time.monotonic()
                response = await http.get(
                    f"{url}/v1/conversations",
                    params={"limit": 100, "order": "activity"},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                api.append((time.monotonic() - began) * 1000)
                assert response.status_code == 200, response.text
            first_view = await open_console(url, args.runs)
        print(
            f"inbox API (100 of {args.conversations}, by activity): "
            f"p50 {statistics.median(api):.0f} ms, max {max(api):.0f} ms"
        )
        print(
            f"console, navigation to inbox listed: p50 {statistics.median(first_view):.0f} ms, "
            f"max {max(first_view):.0f} ms (first load {first_view[0]:.0f} ms)"
        )


async def open_console(url: str, runs: int) -> list[float]:
    timings = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for _ in range(runs):
                page = await browser.new_page()
                await page.add_init_script(f"sessionStorage.setItem('parley.token', '{TOKEN}')")
                began = time.monotonic()
                await page.goto(f"{url}/console/")
                await page.locator("#conversations li[data-id]").first.wait_for()
                timings.append((time.monotonic() - began) * 1000)
                await page.close()
        finally:
            await browser.close()
    return timings


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
