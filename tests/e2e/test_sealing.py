"""Whatever a participant and the people answering them wrote crosses the log sealed: a whole
conversation (inbound, the AI's reply and its send, both statuses, a takeover, an agent's
message, a close) leaves no number, name or body in clear on any topic, while every service
still reads them."""

from __future__ import annotations

from typing import Any

from parley_shared import topics
from tests.e2e.conftest import Parley, eventually
from tests.helpers import read_topic

NUMBER = "whatsapp:+15550199871"
SECRETS = ("5550199871", "Grace Hopper", "my card ends 4242", "AI says", "Ana here, sorry")


async def test_no_personal_field_crosses_the_log_in_clear(parley: Parley) -> None:
    await parley.text(NUMBER, "my card ends 4242", ProfileName="Grace Hopper", WaId="15550199871")

    async def answered() -> list[dict[str, Any]] | None:
        history = await parley.history_of(NUMBER)
        replies = [m for m in history if m["direction"] == "outbound"]
        return history if replies and replies[0]["status"] == "delivered" else None

    await eventually(answered)
    [conversation] = await parley.conversations_of(NUMBER)
    path = f"/v1/conversations/{conversation['id']}"
    await parley.api(f"{path}/takeover", method="POST", json={"agent": "Ana"})
    await parley.api(
        f"{path}/messages", method="POST", json={"agent": "Ana", "body": "Ana here, sorry"}
    )

    async def agent_sent() -> list[dict[str, Any]] | None:
        history = await parley.history_of(NUMBER)
        return history if any(m["body"] == "Ana here, sorry" for m in history) else None

    await eventually(agent_sent)
    await parley.api(f"{path}/close", method="POST")

    # Every service read them: the history, the profile name and the model's prompt.
    history = await parley.history_of(NUMBER)
    assert [m["body"] for m in history][:2] == ["my card ends 4242", "AI says: my card ends 4242"]
    [closed] = await parley.conversations_of(NUMBER)
    assert (closed["profile_name"], closed["state"]) == ("Grace Hopper", "closed")
    assert parley.openai.requests[0]["messages"][-1]["content"] == "my card ends 4242"

    seen = 0
    for topic in topics.ALL:
        for record in await read_topic(parley.bus, topic, expect=10_000, timeout_s=2):
            seen += 1
            for secret in SECRETS:
                assert secret.encode() not in (record.value or b""), (topic, secret)
    # inbound, reply, sent, two statuses, takeover, agent's message and its send, close.
    assert seen >= 9
