"""Operators' APIs: clear 4xx for bad tokens, ids and parameters; never a 5xx."""

from __future__ import annotations

import csv
import io
import uuid

import httpx
import pytest

from tests.e2e.conftest import Parley, eventually


async def test_missing_or_wrong_token_is_401(parley: Parley) -> None:
    for client, path in (
        (parley.conversation, "/v1/conversations"),
        (parley.analytics, "/v1/stats"),
        (parley.analytics, "/v1/delivery"),
    ):
        for auth in (None, "Bearer wrong-token", "Basic abc", "Bearer"):
            headers = {"Authorization": auth} if auth else {}
            async with httpx.AsyncClient(
                base_url=str(client.base_url), headers=headers
            ) as anonymous:
                response = await anonymous.get(path)
            assert response.status_code == 401, (path, auth)
            assert response.headers["www-authenticate"] == "Bearer"


async def test_conversation_api_rejects_bad_input_clearly(parley: Parley) -> None:
    api = parley.conversation
    unknown = uuid.uuid4()
    for response in (
        await api.get(f"/v1/conversations/{unknown}"),
        await api.get(f"/v1/conversations/{unknown}/messages"),
        await api.post(f"/v1/conversations/{unknown}/close"),
    ):
        assert response.status_code == 404
        assert str(unknown) in response.json()["detail"]
    for path in (
        "/v1/conversations/not-a-uuid",
        "/v1/conversations?state=maybe",
        "/v1/conversations?limit=0",
        "/v1/conversations?limit=100000",
        "/v1/conversations?channel=fax",
        "/v1/conversations?cursor=%%%",
        "/v1/conversations?cursor=" + "A" * 40,
    ):
        response = await api.get(path)
        assert response.status_code == 422, path


async def test_conversation_pages_cover_everything_once(parley: Parley) -> None:
    numbers = [f"+1555040{i:04d}" for i in range(5)]
    for number in numbers:
        await parley.text(number, "hello")

    async def all_there() -> bool:
        page = await parley.api("/v1/conversations", params={"limit": 200})
        return len(page["items"]) == len(numbers)

    await eventually(all_there)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await parley.api("/v1/conversations", params=params)
        seen += [c["participant"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == numbers
    open_sms = await parley.api("/v1/conversations", params={"state": "open", "channel": "sms"})
    assert len(open_sms["items"]) == len(numbers)
    assert (await parley.api("/v1/conversations", params={"channel": "whatsapp"}))["items"] == []


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=yesterday",
        "channel=fax",
        "our_number=DROP%20TABLE",
        "from=1900-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        # 30 days before this is before year 1: was a 500
        "to=0001-01-05T00:00:00Z",
        "from=9999-12-31T00:00:00Z",
    ],
)
async def test_analytics_rejects_bad_ranges_and_filters(parley: Parley, query: str) -> None:
    response = await parley.analytics.get(f"/v1/stats?{query}")
    assert response.status_code == 422
    assert response.json()["detail"]


async def test_analytics_rejects_a_bad_granularity(parley: Parley) -> None:
    response = await parley.analytics.get("/v1/engagement?granularity=minute")
    assert response.status_code == 422


async def test_openapi_documents_the_operator_endpoints(parley: Parley) -> None:
    conversation = (await parley.conversation.get("/openapi.json")).json()
    analytics = (await parley.analytics.get("/openapi.json")).json()
    assert {
        "/v1/conversations",
        "/v1/conversations/{conversation_id}/messages",
        "/v1/conversations/{conversation_id}/close",
    } <= set(conversation["paths"])
    assert {
        "/v1/stats",
        "/v1/engagement",
        "/v1/response-times",
        "/v1/delivery",
        "/v1/ai-usage",
        "/v1/export/messages.csv",
    } <= set(analytics["paths"])


async def test_exported_bodies_never_start_a_spreadsheet_formula(parley: Parley) -> None:
    await parley.text("+15550100099", '=HYPERLINK("http://evil.example","click")')

    async def exported() -> list[list[str]] | None:
        response = await parley.analytics.get("/v1/export/messages.csv")
        header, *rows = list(csv.reader(io.StringIO(response.text)))
        body, direction = header.index("body"), header.index("direction")
        mine = [r for r in rows if "evil.example" in r[body] and r[direction] == "inbound"]
        return mine or None

    [row] = await eventually(exported)
    assert '\'=HYPERLINK("http://evil.example","click")' in row
    assert "+15550100099" in row  # the sender's number is exported as it is


async def test_the_console_reads_the_twilio_set_up_check(parley: Parley) -> None:
    account = parley.twilio.account
    account.add_number("+15557654321", "https://parley.test/webhooks/twilio/messages")
    stray = account.add_number("+15557650099", None)
    response = await parley.sender.get("/v1/twilio/check")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is False
    assert [(f["sid"], f["ok"]) for f in report["findings"]] == [
        (account.numbers[0]["sid"], True),
        (stray["sid"], False),
    ]
    assert report["findings"][1]["problem"] == "incoming messages go to nowhere (POST)"
    async with httpx.AsyncClient(base_url=str(parley.sender.base_url)) as anonymous:
        assert (await anonymous.get("/v1/twilio/check")).status_code == 401
