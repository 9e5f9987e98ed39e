"""X-Twilio-Signature checks against the public URL Twilio called, not the one we see.

Behind a proxy, ingress or tunnel the scheme, host and port the app sees differ from what
Twilio signed, so the URL is rebuilt from the configured public base URL plus the request's
path and query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from twilio.request_validator import RequestValidator, get_signature_algorithm


class _MultiParams:
    """The ``getall`` interface RequestValidator uses for repeated parameter names."""

    def __init__(self, params: Mapping[str, Sequence[str]]) -> None:
        self._params = params

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._params)

    def __bool__(self) -> bool:
        return bool(self._params)

    def getall(self, name: str) -> list[str]:
        return list(self._params[name])


def public_url(base_url: str, path: str, query: str) -> str:
    url = base_url.rstrip("/") + path
    return f"{url}?{query}" if query else url


class SignatureChecker:
    def __init__(self, auth_token: str) -> None:
        self._validator = RequestValidator(auth_token)

    def is_valid(
        self,
        url: str,
        params: Mapping[str, Sequence[str]],
        signature: str | None,
        signature_settings: str | None = None,
    ) -> bool:
        if not signature:
            return False
        algorithm = get_signature_algorithm(signature_settings)
        return bool(self._validator.validate(url, _MultiParams(params), signature, algorithm))

    def sign(self, url: str, params: Mapping[str, Sequence[str]]) -> str:
        """What Twilio would send for this request (used by the local sandbox and tests)."""
        return str(self._validator.compute_signature(url, _MultiParams(params)))
