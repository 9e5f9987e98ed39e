"""Responders: the OpenAI-compatible chat completions adapter, and an offline stand-in."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from parley_ai.core import Persona


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int


class ResponderFailed(Exception):
    """The model could not answer, even after the SDK's retries; ``kind`` says how (a
    bounded set, for metrics): rate_limited, server, connection, refused, empty."""

    def __init__(self, message: str, kind: str = "refused") -> None:
        super().__init__(message)
        self.kind = kind


def failure_kind(exc: openai.OpenAIError) -> str:
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.InternalServerError):
        return "server"
    return "refused"


class Responder(Protocol):
    offline: bool

    async def complete(self, persona: Persona, messages: list[dict[str, str]]) -> Completion: ...

    async def close(self) -> None: ...


class OpenAIResponder:
    """Chat completions through ``openai.AsyncOpenAI``.

    The SDK retries 408/409/429/5xx and connection errors with exponential backoff and honours
    Retry-After; ``max_retries`` and ``timeout`` bound how long one reply may take.
    """

    offline = False

    def __init__(self, client: AsyncOpenAI) -> None:
        self._client = client

    async def complete(self, persona: Persona, messages: list[dict[str, str]]) -> Completion:
        started = time.monotonic()
        try:
            # The SDK's own request path (auth, retries, time-outs, errors), without
            # ``chat.completions.create``'s parameter transform: it walks every message of the
            # history through typing introspection, and was two thirds of this service's CPU.
            # Our messages are plain JSON already.
            response = await self._client.post(
                "/chat/completions",
                cast_to=ChatCompletion,
                body={
                    "model": persona.model,
                    "messages": messages,
                    "max_tokens": persona.max_tokens,
                    "temperature": persona.temperature,
                },
            )
        except openai.OpenAIError as exc:
            raise ResponderFailed(repr(exc), failure_kind(exc)) from exc
        text = (response.choices[0].message.content or "").strip() if response.choices else ""
        if not text:
            raise ResponderFailed("empty completion", "empty")
        usage = response.usage
        return Completion(
            text=text,
            model=response.model or persona.model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_ms=int((time.monotonic() - started) * 1000),
        )

    async def close(self) -> None:
        await self._client.close()


class OfflineResponder:
    """Answers without any model when no API key is configured, and says so."""

    offline = True

    async def complete(self, persona: Persona, messages: list[dict[str, str]]) -> Completion:
        latest = messages[-1]["content"] if messages else ""
        turns = sum(1 for m in messages if m["role"] == "user")
        text = f"[offline assistant] You said: {latest[:200]!s} (message {turns} here)"
        return Completion(
            text=text, model="offline", prompt_tokens=0, completion_tokens=0, latency_ms=0
        )

    async def close(self) -> None:
        return None
