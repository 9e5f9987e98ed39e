"""Fuzzing: every operation of every OpenAPI document with generated (valid and invalid)
input, every response checked against the document; webhooks with generated forms and
signatures. Never a 5xx; always what the document promises."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)

from tests.e2e.conftest import API_TOKEN, Parley

EXAMPLES_PER_OPERATION = 40
# A request can be schema-valid and still meaningless (a cursor this API never issued, a
# range that ends before it starts): it gets a documented 422, which these two heuristics
# would call a failure. Every other check runs: no 5xx, documented status codes, response
# bodies, content types and headers as documented.
NOT_CHECKED = [negative_data_rejection, positive_data_acceptance]
# Streams that never end by design (the console's live updates): test_live.py covers them.
ENDLESS = {"/v1/stream"}


def fuzz(document: dict[str, Any], base_url: str, headers: dict[str, str]) -> list[str]:
    """Run every operation's generated cases; returns the failures, one line each."""
    schema = schemathesis.openapi.from_dict(document)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    failures: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ENDLESS:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=20)
            try:
                case.validate_response(response, excluded_checks=NOT_CHECKED)
            except (Exception, BaseExceptionGroup) as exc:  # every failed check, together
                found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
                for failure in found:
                    summary = " | ".join(str(failure).strip().splitlines()[:4])
                    failures.add(f"{case.operation.label}: {summary} [{case.as_curl_command()}]")

        run()
    return sorted(failures)


async def fuzz_service(client: httpx.AsyncClient, headers: dict[str, str]) -> Sequence[str]:
    document = (await client.get("/openapi.json")).json()
    return await asyncio.to_thread(fuzz, document, str(client.base_url), headers)


# schemathesis 4.32 draws from the `random` module inside its strategies, which this
# Hypothesis release deprecates; that is the library's business, not a finding.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
async def test_operator_apis_answer_generated_requests_as_documented(parley: Parley) -> None:
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    assert parley.ai is not None
    failures = [
        *await fuzz_service(parley.conversation, auth),
        *await fuzz_service(parley.ai, auth),
        *await fuzz_service(parley.analytics, auth),
        *await fuzz_service(parley.sender, auth),
    ]
    assert failures == [], "\n".join(failures)
