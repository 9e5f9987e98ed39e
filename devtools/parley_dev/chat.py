"""``./dev chat``: text Parley from a terminal through the local Twilio sandbox.

Each line you type is posted to the gateway as a signed inbound webhook, exactly as Twilio
would; the reply Parley sends through the sandbox is printed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time

import httpx
from twilio.request_validator import RequestValidator

from parley_dev.run import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--from",
        dest="sender",
        default="+15550001234",
        help="your phone number (default %(default)s)",
    )
    parser.add_argument("--to", default="+15557650000", help="Parley's number")
    parser.add_argument("--whatsapp", action="store_true", help="talk over WhatsApp")
    parser.add_argument(
        "--gateway", default=os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8080")
    )
    parser.add_argument("--sandbox", default="http://127.0.0.1:8090")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    prefix = "whatsapp:" if args.whatsapp else ""
    me, bot = prefix + args.sender, prefix + args.to
    url = args.gateway.rstrip("/") + "/webhooks/twilio/messages"
    validator = RequestValidator(os.environ.get("TWILIO_AUTH_TOKEN", SANDBOX_AUTH_TOKEN))
    account = os.environ.get("TWILIO_ACCOUNT_SID", SANDBOX_ACCOUNT_SID)
    print(f"Chatting with Parley as {me} (Ctrl-D to quit).")
    with httpx.Client(timeout=20) as http:
        seen = len(http.get(f"{args.sandbox}/_sandbox/messages", params={"to": me}).json())
        for line in sys.stdin if not sys.stdin.isatty() else iter(lambda: input("you> "), None):
            text = line.strip()
            if not text:
                continue
            sid = "SM" + secrets.token_hex(16)
            params = {
                "MessageSid": sid,
                "SmsSid": sid,
                "SmsMessageSid": sid,
                "AccountSid": account,
                "From": me,
                "To": bot,
                "Body": text,
                "NumMedia": "0",
                "NumSegments": "1",
                "SmsStatus": "received",
                "ApiVersion": "2010-04-01",
            }
            response = http.post(
                url,
                data=params,
                headers={"X-Twilio-Signature": validator.compute_signature(url, params)},
            )
            if response.status_code != 200:
                print(f"gateway answered {response.status_code}: {response.text}")
                continue
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                sent = http.get(f"{args.sandbox}/_sandbox/messages", params={"to": me}).json()
                if len(sent) > seen:
                    for message in sent[seen:]:
                        print(f"parley> {message['body']}")
                    seen = len(sent)
                    break
                time.sleep(0.2)
            else:
                print("(no reply yet; it may still come with your next message)")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (EOFError, KeyboardInterrupt):
        print()
