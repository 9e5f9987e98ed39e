"""How the AI answers per number, set through the API: versioned, audited, effective for the
next message, with the environment's values as defaults."""

from __future__ import annotations

import asyncio
from typing import Any

from parley_shared.db import create_pool
from tests.e2e.conftest import BOT_SMS, Parley, eventually
from tests.e2e.test_loop import replies_to

PATH = f"/v1/numbers/{BOT_SMS}/ai-settings"


async def ai(parley: Parley, method: str, path: str, **kwargs: Any) -> Any:
    assert parley.ai is not None
    response = await parley.ai.request(method, path, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def last_request(parley: Parley) -> dict[str, Any]:
    return parley.openai.requests[-1]


async def test_settings_change_the_next_reply_and_every_version_is_kept(parley: Parley) -> None:
    before = await ai(parley, "GET", PATH)
    assert (before["version"], set(before["sources"].values())) == (0, {"default"})

    pirate = {"changed_by": "Ana", "system_prompt": "Talk like a pirate.", "model": "gpt-pirate"}
    after = await ai(parley, "PUT", PATH, json=pirate)
    assert (after["version"], after["updated_by"]) == (1, "Ana")
    assert after["effective"]["model"] == "gpt-pirate"
    assert after["sources"]["system_prompt"] == "operators"
    assert after["sources"]["max_tokens"] == "default"
    # The same settings again: no new version.
    assert (await ai(parley, "PUT", PATH, json=pirate))["version"] == 1

    number = "+15550160001"
    await parley.text(number, "ahoy?")
    await replies_to(parley, number, 1)
    request = last_request(parley)
    assert request["model"] == "gpt-pirate"
    assert request["messages"][0]["content"].startswith("Talk like a pirate.")

    # History length per number: the earlier exchange has two turns; one is kept.
    await ai(parley, "PUT", PATH, json={**pirate, "history_turns": 1})
    await parley.text(number, "short memory?")
    await replies_to(parley, number, 2)
    assert [m["role"] for m in last_request(parley)["messages"]] == ["system", "assistant", "user"]

    off = await ai(
        parley,
        "PUT",
        PATH,
        json={**pirate, "history_turns": 1, "enabled": False, "changed_by": "Bo"},
    )
    assert off["effective"]["enabled"] is False
    await parley.text(number, "still there?")
    pool = await create_pool(parley.database)
    try:

        async def skipped() -> str | None:
            reason: str | None = await pool.fetchval(
                "SELECT reason FROM ai_inbox ORDER BY occurred_at DESC LIMIT 1"
            )
            return reason

        assert await eventually(skipped) == "ai_disabled"
    finally:
        await pool.close()
    await asyncio.sleep(0.5)
    assert len(parley.twilio.for_number(number)) == 2

    versions = await ai(parley, "GET", f"{PATH}/versions")
    assert [(v["version"], v["actor"], v["changed"]) for v in versions] == [
        (3, "Bo", ["enabled"]),
        (2, "Ana", ["history_turns"]),
        (1, "Ana", ["system_prompt", "model"]),
    ]
    # Back to the defaults: every field left out.
    reset = await ai(parley, "PUT", PATH, json={"changed_by": "Ana"})
    assert (reset["version"], set(reset["sources"].values())) == (4, {"default"})
    listed = await ai(parley, "GET", "/v1/ai-settings")
    assert [n["number"] for n in listed] == [BOT_SMS]


async def test_bad_settings_requests_are_refused_clearly(parley: Parley) -> None:
    assert parley.ai is not None
    bad = [
        ("PUT", PATH, {"changed_by": "Ana", "temperature": 7}),
        ("PUT", PATH, {"system_prompt": "no author"}),
        ("PUT", "/v1/numbers/not-a-number/ai-settings", {"changed_by": "Ana"}),
    ]
    for method, path, body in bad:
        response = await parley.ai.request(method, path, json=body)
        assert response.status_code == 422, (path, body, response.text)
    missing = await parley.ai.get(f"/v1/numbers/{BOT_SMS}/ai-settings/versions")
    assert missing.status_code == 404
    anonymous = await parley.http.get(str(parley.ai.base_url) + PATH)
    assert anonymous.status_code == 401
