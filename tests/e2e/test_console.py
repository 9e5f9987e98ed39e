"""The operators' console in a real browser (Debian's chromium through Playwright) against
the whole running loop: live inbox, takeover and an agent's reply reaching the participant, a
WhatsApp template, charts with data, settings, and a second tenant who sees nothing of the
first. Screenshots of every view go to ``test-artifacts/console/``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from parley_dev.carrier import call_in
from tests.e2e.conftest import BOT_SMS, BOT_WHATSAPP, PUBLIC, Parley, eventually
from tests.e2e.test_tenants import answered, as_token, call

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("PARLEY_TEST_ARTIFACTS", "test-artifacts")) / "console"
ALICE = "+15550190001"
WANDA = "whatsapp:+15550190002"
TEMPLATE = "HX" + "a" * 32


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once, before the browser starts
        pytest.fail(f"{CHROMIUM} is missing: ./dev test installs Debian's chromium")
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox cannot start.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


async def signed_in(browser: Browser, parley: Parley, token: str, name: str) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 860})
    await page.goto(f"{parley.conversation.base_url}/console/")
    await page.fill("input[name=token]", token)
    await page.fill("input[name=agent]", name)
    await page.click("button[type=submit]")
    await expect(page.locator("#nav")).to_be_visible()
    return page


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def tenant_token(parley: Parley, name: str, numbers: list[str]) -> str:
    tenant = await call(
        parley.conversation, "POST", "/v1/tenants", json={"name": name, "numbers": numbers}
    )
    issued = await call(
        parley.conversation, "POST", f"/v1/tenants/{tenant['id']}/tokens", json={"scope": "write"}
    )
    token: str = issued["token"]
    assert parley.ai is not None
    for api in (parley.conversation, parley.ai, parley.analytics, parley.sender):
        async with as_token(api, token) as client:
            await answered(client, "/v1/me" if api is parley.conversation else "/openapi.json")
    return token


async def test_an_operator_works_a_conversation_in_the_console(
    parley: Parley, browser: Browser
) -> None:
    acme = await tenant_token(parley, "Acme", [BOT_SMS, BOT_WHATSAPP])
    other = await tenant_token(parley, "Other", ["+15557650003"])
    page = await signed_in(browser, parley, acme, "Ana")
    await expect(page.locator("#who")).to_contain_text("Acme")

    # An inbound message shows up in the open inbox by itself.
    await parley.text(ALICE, "Is my order on its way?")
    row = page.locator("#conversations li", has_text=ALICE)
    await expect(row).to_be_visible(timeout=15_000)
    await shot(page, "1-inbox")

    await row.click()
    thread = page.locator("#thread")
    await expect(thread.locator(".bubble.outbound")).to_have_count(1, timeout=15_000)
    await thread.get_by_role("button", name="Take over").click()
    await expect(thread.get_by_role("button", name="Hand back to the AI")).to_be_visible()
    await thread.locator("textarea[name=body]").fill("Ana here: it ships tomorrow.")
    await thread.get_by_role("button", name="Send", exact=True).click()

    async def delivered_to_alice() -> bool:
        return any("ships tomorrow" in m.body for m in parley.twilio.for_number(ALICE))

    assert await eventually(delivered_to_alice)
    await expect(thread.locator(".bubble.outbound", has_text="Ana here")).to_be_visible(
        timeout=15_000
    )
    await expect(thread.locator(".bubble", has_text="Ana ·")).to_have_count(1)
    # A call Alice made and no one answered shows in her thread as it comes.
    assert await call_in(parley.twilio, ALICE, BOT_SMS, PUBLIC, how="missed") == [True, True]
    await expect(thread.locator(".bubble.call", has_text="missed (no-answer)")).to_be_visible(
        timeout=15_000
    )
    await shot(page, "2-conversation")

    # A WhatsApp template, with the 24-hour window shown.
    await parley.text(WANDA, "hola")
    await page.select_option("select[name=channel]", "whatsapp")
    await expect(page.locator("#conversations li", has_text=ALICE)).to_have_count(0)
    await page.locator("#conversations li", has_text=WANDA).click()
    # Opening a conversation keeps the list as filtered.
    await expect(page.locator("select[name=channel]")).to_have_value("whatsapp")
    await expect(page.locator("#conversations li", has_text=ALICE)).to_have_count(0)
    await expect(thread).to_contain_text("Free-form messages until")
    await thread.locator("input[name=content_sid]").fill(TEMPLATE)
    await thread.locator("input[name=variables]").fill('{"1": "Wanda"}')
    await thread.get_by_role("button", name="Send template").click()

    async def template_sent() -> bool:
        return any(m.content_sid == TEMPLATE for m in parley.twilio.for_number(WANDA))

    assert await eventually(template_sent)
    await expect(thread.locator(".bubble", has_text=f"template {TEMPLATE}")).to_be_visible(
        timeout=15_000
    )
    await shot(page, "3-whatsapp-template")

    await page.click("nav a[href='#/analytics']")
    await expect(page.locator("#figures")).to_contain_text("Messages in")
    # Alice's missed call, counted beside the messages.
    await expect(page.locator("#figures")).to_contain_text("Calls (missed)1 (1)")
    assert await page.locator("svg rect.bar").count() > 0
    await expect(page.locator("#breakdown")).to_contain_text(BOT_SMS)
    await shot(page, "4-analytics")

    await parley.text(ALICE, "STOP")

    async def opted_out() -> bool:
        people = await call(parley.conversation, "GET", "/v1/opt-outs")
        return any(p["participant"] == ALICE for p in people)

    assert await eventually(opted_out)
    await page.click("nav a[href='#/settings']")
    await expect(page.locator(f"[data-number='{BOT_SMS}']")).to_be_visible()
    await expect(page.locator("#opt-outs")).to_contain_text(ALICE)
    await expect(page.locator("body")).to_contain_text("API tokens")
    await shot(page, "5-settings")

    # Another tenant, signed in beside: none of Acme's conversations or figures.
    stranger = await signed_in(browser, parley, other, "Olga")
    await expect(stranger.locator("#conversations")).to_contain_text("No conversations yet.")
    await stranger.click("nav a[href='#/analytics']")
    await expect(stranger.locator("#figures")).to_contain_text("Messages in")
    assert "Acme" not in await stranger.content()
    assert await stranger.locator("#breakdown tr").count() == 1  # the header row only
    await shot(stranger, "6-other-tenant")
