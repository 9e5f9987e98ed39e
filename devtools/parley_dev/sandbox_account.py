"""The sandbox's account set-up API: the account, its numbers (with their webhooks) and its
Messaging Services, as the twilio SDK reads and updates them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class Account:
    friendly_name: str = "Parley sandbox"
    numbers: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)

    def add_number(self, phone_number: str, sms_url: str | None) -> dict[str, Any]:
        number = {
            "sid": "PN" + secrets.token_hex(16),
            "phone_number": phone_number,
            "friendly_name": phone_number,
            "sms_url": sms_url,
            "sms_method": "POST",
            "capabilities": {"sms": True, "mms": True, "voice": False},
        }
        self.numbers.append(number)
        return number

    def add_service(
        self, name: str, inbound_url: str | None, status_callback: str | None = None
    ) -> dict[str, Any]:
        service = {
            "sid": "MG" + secrets.token_hex(16),
            "friendly_name": name,
            "inbound_request_url": inbound_url,
            "inbound_method": "POST",
            "use_inbound_webhook_on_number": inbound_url is None,
            "status_callback": status_callback,
        }
        self.services.append(service)
        return service


def _page(key: str, items: list[dict[str, Any]], uri: str) -> dict[str, Any]:
    # The 2010 API and the newer domains page differently; each SDK reads its own shape.
    return {
        key: items,
        "page": 0,
        "page_size": len(items) or 50,
        "first_page_uri": uri,
        "next_page_uri": None,
        "uri": uri,
        "meta": {
            "page": 0,
            "page_size": len(items) or 50,
            "first_page_url": uri,
            "next_page_url": None,
            "url": uri,
            "key": key,
        },
    }


def add_routes(
    app: FastAPI, account: Account, account_sid: str, authorised: Any, error: Any
) -> None:
    base = "/2010-04-01/Accounts/{account_sid}"

    def refused(request: Request, sid: str) -> JSONResponse | None:
        if sid != account_sid or not authorised(request):
            response: JSONResponse = error(401, 20003, "Authenticate")
            return response
        return None

    @app.get(base + ".json")
    async def fetch_account(account_sid: str, request: Request) -> JSONResponse:
        return refused(request, account_sid) or JSONResponse(
            {"sid": account_sid, "friendly_name": account.friendly_name, "status": "active"}
        )

    @app.get(base + "/IncomingPhoneNumbers.json")
    async def list_numbers(account_sid: str, request: Request) -> JSONResponse:
        return refused(request, account_sid) or JSONResponse(
            _page("incoming_phone_numbers", account.numbers, str(request.url.path))
        )

    @app.post(base + "/IncomingPhoneNumbers/{sid}.json")
    async def update_number(account_sid: str, sid: str, request: Request) -> JSONResponse:
        denied = refused(request, account_sid)
        if denied is not None:
            return denied
        number = next((n for n in account.numbers if n["sid"] == sid), None)
        if number is None:
            return error(404, 20404, "The requested resource was not found")  # type: ignore[no-any-return]
        form = await request.form()
        for field_name, key in (("SmsUrl", "sms_url"), ("SmsMethod", "sms_method")):
            if field_name in form:
                number[key] = str(form[field_name])
        return JSONResponse(number)

    @app.get("/v1/Services")
    async def list_services(request: Request) -> JSONResponse:
        return refused(request, account_sid) or JSONResponse(
            _page("services", account.services, str(request.url))
        )
