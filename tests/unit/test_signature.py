from __future__ import annotations

from twilio.request_validator import RequestValidator

from parley_gateway.signature import SignatureChecker, public_url
from tests.helpers import AUTH_TOKEN, inbound_params

PUBLIC = "https://parley.example.com"


def test_valid_signature_over_the_public_url() -> None:
    params = inbound_params()
    url = public_url(PUBLIC, "/webhooks/twilio/messages", "")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    checker = SignatureChecker(AUTH_TOKEN)
    assert checker.is_valid(url, {k: [v] for k, v in params.items()}, signature)


def test_behind_a_proxy_the_public_base_url_is_what_counts() -> None:
    # Twilio signed https://public-host/…; the app sees http://10.0.0.5:8080/… behind the proxy.
    params = {k: [v] for k, v in inbound_params().items()}
    signed_url = f"{PUBLIC}/webhooks/twilio/messages?tenant=acme"
    signature = SignatureChecker(AUTH_TOKEN).sign(signed_url, params)
    checker = SignatureChecker(AUTH_TOKEN)
    seen_by_app = "http://10.0.0.5:8080/webhooks/twilio/messages?tenant=acme"
    assert not checker.is_valid(seen_by_app, params, signature)
    rebuilt = public_url(PUBLIC + "/", "/webhooks/twilio/messages", "tenant=acme")
    assert rebuilt == signed_url
    assert checker.is_valid(rebuilt, params, signature)


def test_default_port_in_the_signed_url_is_tolerated() -> None:
    params = {k: [v] for k, v in inbound_params().items()}
    signature = SignatureChecker(AUTH_TOKEN).sign(f"{PUBLIC}:443/webhooks/twilio/messages", params)
    assert SignatureChecker(AUTH_TOKEN).is_valid(
        f"{PUBLIC}/webhooks/twilio/messages", params, signature
    )


def test_messaging_service_pool_number_validates() -> None:
    # A number in a Messaging Service pool: extra MessagingServiceSid, To is any pool number.
    params = {
        k: [v]
        for k, v in inbound_params(MessagingServiceSid="MG" + "a" * 32, To="+15550009999").items()
    }
    url = f"{PUBLIC}/webhooks/twilio/messages"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        url, {k: v[0] for k, v in params.items()}
    )
    assert SignatureChecker(AUTH_TOKEN).is_valid(url, params, signature)


def test_tampered_parameter_is_rejected() -> None:
    params = {k: [v] for k, v in inbound_params().items()}
    url = f"{PUBLIC}/webhooks/twilio/messages"
    signature = SignatureChecker(AUTH_TOKEN).sign(url, params)
    tampered = {**params, "Body": ["Send me all the money"]}
    assert not SignatureChecker(AUTH_TOKEN).is_valid(url, tampered, signature)


def test_unknown_extra_parameter_is_signed_too() -> None:
    params = {k: [v] for k, v in inbound_params(SomethingNew="42").items()}
    url = f"{PUBLIC}/webhooks/twilio/messages"
    signature = SignatureChecker(AUTH_TOKEN).sign(url, params)
    assert SignatureChecker(AUTH_TOKEN).is_valid(url, params, signature)
    dropped = {k: v for k, v in params.items() if k != "SomethingNew"}
    assert not SignatureChecker(AUTH_TOKEN).is_valid(url, dropped, signature)


def test_wrong_token_missing_signature_and_repeated_names() -> None:
    url = f"{PUBLIC}/webhooks/twilio/messages"
    params = {"A": ["2", "1"], "B": ["x"]}
    signature = SignatureChecker(AUTH_TOKEN).sign(url, params)
    assert SignatureChecker(AUTH_TOKEN).is_valid(url, {"A": ["1", "2"], "B": ["x"]}, signature)
    assert not SignatureChecker("another-token").is_valid(url, params, signature)
    assert not SignatureChecker(AUTH_TOKEN).is_valid(url, params, None)
    assert not SignatureChecker(AUTH_TOKEN).is_valid(url, params, "")


def test_sha256_signature_settings_header() -> None:
    url = f"{PUBLIC}/webhooks/twilio/messages"
    params = {k: [v] for k, v in inbound_params().items()}
    validator = RequestValidator(AUTH_TOKEN)
    signature = validator.compute_signature(
        url, {k: v[0] for k, v in params.items()}, "HMAC_SHA256"
    )
    checker = SignatureChecker(AUTH_TOKEN)
    assert checker.is_valid(url, params, signature, "key=k1,algorithm=HMAC_SHA256")
    assert not checker.is_valid(url, params, signature)
