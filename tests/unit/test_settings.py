from __future__ import annotations

import pytest

from parley_ai.app import build_responder
from parley_ai.llm import OfflineResponder
from parley_ai.settings import AiSettings
from parley_gateway.settings import GatewaySettings
from parley_sender.settings import SenderSettings
from parley_shared.runtime import load_settings


def test_missing_and_invalid_settings_are_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATEWAY_PORT", "99999")
    with pytest.raises(SystemExit) as exit_info:
        load_settings(GatewaySettings)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "TWILIO_AUTH_TOKEN" in err
    assert "PUBLIC_BASE_URL" in err
    assert "GATEWAY_PORT" in err


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/parley")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "a" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://parley.example.com")
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:8090")
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "staging.")
    settings = load_settings(SenderSettings)
    assert str(settings.twilio_api_base_url) == "http://127.0.0.1:8090/"
    assert settings.kafka_topic_prefix == "staging."
    assert settings.sender_port == 8083
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "not-a-sid")
    with pytest.raises(SystemExit):
        load_settings(SenderSettings)


def test_the_ai_needs_a_model_or_offline_asked_for(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/parley")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AI_OFFLINE", raising=False)
    with pytest.raises(SystemExit):
        load_settings(AiSettings)
    assert "OPENAI_API_KEY is unset" in capsys.readouterr().err
    monkeypatch.setenv("AI_OFFLINE", "1")
    assert isinstance(build_responder(load_settings(AiSettings)), OfflineResponder)
    monkeypatch.setenv("AI_OFFLINE", "0")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    assert not build_responder(load_settings(AiSettings)).offline
