"""Who a caller is and what it reaches, without I/O."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from parley_analytics.participants import levels_of
from parley_analytics.views import Filters
from parley_shared.tenancy import ADMIN, Caller, digest_of, new_token

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_tokens_are_random_and_only_their_digest_is_kept() -> None:
    token, digest = new_token()
    again, _ = new_token()
    assert token.startswith("pt_") and len(token) > 40 and token != again
    assert digest == digest_of(token) == hashlib.sha256(token.encode()).hexdigest()


def test_a_tenant_owns_both_channels_of_its_numbers_and_nothing_else() -> None:
    tenant = Caller("read", uuid.uuid4(), frozenset({"+15550000001"}))
    assert tenant.owns("+15550000001") and tenant.owns("whatsapp:+15550000001")
    assert not tenant.owns("+15550000002")
    assert tenant.addresses() == ["+15550000001", "whatsapp:+15550000001"]
    assert ADMIN.owns("+15550000002") and ADMIN.addresses() is None and ADMIN.admin


def test_participant_sketches_of_a_tenant_are_its_numbers_within_the_filters() -> None:
    mine = frozenset({"+15550000001", "+15550000002"})
    assert levels_of(Filters(NOW, NOW, None, None)) == ["*"]
    assert levels_of(Filters(NOW, NOW, "sms", None)) == ["sms"]
    assert levels_of(Filters(NOW, NOW, None, None, mine)) == ["n:+15550000001", "n:+15550000002"]
    assert levels_of(Filters(NOW, NOW, "sms", "whatsapp:+15550000002", mine)) == [
        "sms|n:+15550000002"
    ]
    # Another tenant's number, asked for by name: nothing.
    assert levels_of(Filters(NOW, NOW, None, "+15550000009", mine)) == []
    assert levels_of(Filters(NOW, NOW, None, None, frozenset())) == []
