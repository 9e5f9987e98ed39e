"""Participants' media and locations: kept in the history, described to the model, and
fetched from Twilio for operators only through the authenticated API."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import ACCOUNT_SID, Parley, eventually
from tests.e2e.test_loop import replies_to

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def inbound(parley: Parley, number: str) -> dict[str, Any]:
    async def seen() -> dict[str, Any] | None:
        history = await parley.history_of(number)
        return history[0] if history else None

    return await eventually(seen)


async def test_an_image_is_kept_described_to_the_model_and_served_to_operators(
    parley: Parley,
) -> None:
    number = "whatsapp:+15550140001"
    parley.twilio.media["ME1"] = ("image/png", PNG)
    url = f"{parley.twilio_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME1"
    await parley.text(number, "", NumMedia="1", MediaUrl0=url, MediaContentType0="image/png")
    [reply] = await replies_to(parley, number, 1)
    assert reply.body == "AI says: [sent an attachment: image/png]"

    message = await inbound(parley, number)
    assert message["media"] == [{"url": url, "content_type": "image/png"}]
    [conversation] = await parley.conversations_of(number)
    path = f"/v1/conversations/{conversation['id']}/messages/{message['id']}/media"
    fetched = await parley.conversation.get(f"{path}/0")
    assert fetched.status_code == 200, fetched.text
    assert (fetched.headers["content-type"], fetched.content) == ("image/png", PNG)
    # Credentials went to Twilio's API host only, not to the storage URL it redirected to.
    assert parley.twilio.media_fetches_with_credentials == [False]
    assert (await parley.conversation.get(f"{path}/1")).status_code == 404
    anonymous = await parley.http.get(str(parley.conversation.base_url) + f"{path}/0")
    assert anonymous.status_code == 401


async def test_media_not_on_a_twilio_host_is_never_fetched(parley: Parley) -> None:
    number = "+15550140002"
    await parley.text(
        number,
        "look",
        NumMedia="1",
        MediaUrl0="https://attacker.example/steal.jpg",
        MediaContentType0="image/jpeg",
    )
    message = await inbound(parley, number)
    [conversation] = await parley.conversations_of(number)
    fetched = await parley.conversation.get(
        f"/v1/conversations/{conversation['id']}/messages/{message['id']}/media/0"
    )
    assert fetched.status_code == 403
    assert "attacker.example" in fetched.json()["detail"]


async def test_a_shared_location_is_in_the_history_and_told_to_the_model(parley: Parley) -> None:
    number = "whatsapp:+15550140003"
    await parley.text(
        number,
        "",
        Latitude="52.52",
        Longitude="13.405",
        Address="Alexanderplatz, Berlin",
        Label="Meet here",
        MessageType="location",
    )
    [reply] = await replies_to(parley, number, 1)
    assert "[shared a location: 52.52, 13.405 Meet here]" in reply.body
    message = await inbound(parley, number)
    assert message["location"] == {
        "latitude": 52.52,
        "longitude": 13.405,
        "address": "Alexanderplatz, Berlin",
        "label": "Meet here",
    }
