"""A fake OpenAI-compatible chat completions server, driven by the real ``openai`` SDK.

It records every request (so tests can check the context sent), answers with a scripted
function of the messages, and can be told to fail the next calls with a status code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

Script = Callable[[list[dict[str, Any]]], str]


def echo(messages: list[dict[str, Any]]) -> str:
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"AI says: {last}"


@dataclass
class FakeOpenAI:
    script: Script = echo
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Each entry fails one call: (status, retry-after seconds or None).
    failures: list[tuple[int, float | None]] = field(default_factory=list)
    delay_s: float = 0.0
    delays: dict[str, float] = field(default_factory=dict)  # by a word in the last message
    # Faults drawn at random for every call (the fault-injection suite's model).
    error_rate: float = 0.0  # 500
    throttle_rate: float = 0.0  # 429 with a Retry-After
    hang_rate: float = 0.0  # no answer for hang_s
    hang_s: float = 60.0
    random: Random = field(default_factory=Random)

    def draw(self) -> tuple[int, float | None] | None:
        roll = self.random.random()
        if roll < self.error_rate:
            return 500, None
        if roll < self.error_rate + self.throttle_rate:
            return 429, 0.2
        return None

    def hangs(self) -> bool:
        return self.random.random() < self.hang_rate

    def last_user_text(self, body: dict[str, Any]) -> str:
        return next(
            (m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"),
            "",
        )


def create_app(fake: FakeOpenAI) -> FastAPI:
    app = FastAPI(title="fake OpenAI")

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        fake.requests.append(body)
        failure = fake.failures.pop(0) if fake.failures else fake.draw()
        if fake.hangs():
            await asyncio.sleep(fake.hang_s)
        if failure is not None:
            status, retry_after = failure
            headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
            return JSONResponse(
                {"error": {"message": "fake failure", "type": "server_error"}},
                status_code=status,
                headers=headers,
            )
        last = fake.last_user_text(body)
        delay = next((d for word, d in fake.delays.items() if word in last), fake.delay_s)
        if delay:
            await asyncio.sleep(delay)
        text = fake.script(body["messages"])
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion_tokens = len(text.split())
        return JSONResponse(
            {
                "id": f"chatcmpl-{len(fake.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake-model"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    return app


def main() -> None:
    """``python -m parley_dev.fake_openai``: serve it with a fixed latency (benchmarks)."""
    import os

    import uvicorn

    fake = FakeOpenAI(delay_s=float(os.environ.get("FAKE_OPENAI_DELAY_MS", "0")) / 1000)
    # Recording every request would grow without bound under load.
    fake.requests = _Forgetful()
    uvicorn.run(
        create_app(fake),
        host="127.0.0.1",
        port=int(os.environ.get("FAKE_OPENAI_PORT", "8091")),
        log_level="warning",
        access_log=False,
    )


class _Forgetful(list[dict[str, Any]]):
    def append(self, item: dict[str, Any]) -> None:
        return None


if __name__ == "__main__":
    main()
