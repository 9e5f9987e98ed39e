"""``./dev chat``: text Parley from a terminal through the local Twilio sandbox.

Each line you type is texted to Parley's number through the sandbox, which answers carrier
keywords as Twilio does (STOP, START, HELP) and posts the signed webhook to the gateway.
Whatever comes back, Parley's replies and Twilio's own answers, is printed as it arrives;
typing never waits for a reply. ``--telnyx`` texts through the Telnyx sandbox instead.

Two lines are not texts: ``/call`` calls Parley's number and hangs up unanswered (``/call
45``: a call answered and 45 seconds long), ``/email Subject: text`` emails Parley's address;
both show in the conversation's history and in analytics, and get no reply.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TextIO

import httpx

# The address ``/email`` writes to.
EMAIL_ADDRESS = "help@parley.example"


class Replies(threading.Thread):
    """Prints the messages sent to ``me`` as the sandbox records them."""

    def __init__(self, sandbox: str, me: str, out: TextIO | None = None) -> None:
        super().__init__(daemon=True)
        self._sandbox = sandbox
        self._me = me
        self._out = out or sys.stdout
        self._stop_asked = threading.Event()
        self.last_seen_at = time.monotonic()
        with httpx.Client(timeout=10) as http:
            self._seen = len(self._fetch(http))

    def _fetch(self, http: httpx.Client) -> list[dict[str, object]]:
        response = http.get(f"{self._sandbox}/_sandbox/messages", params={"to": self._me})
        messages: list[dict[str, object]] = response.json()
        return messages

    def run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop_asked.wait(0.2):
                messages = self._fetch(http)
                for message in messages[self._seen :]:
                    who = "twilio" if message.get("from_twilio") else "parley"
                    print(f"{who}> {message['body']}", file=self._out, flush=True)
                    self.last_seen_at = time.monotonic()
                self._seen = max(self._seen, len(messages))

    def stop(self) -> None:
        self._stop_asked.set()
        self.join()


def request_of(text: str, me: str, bot: str) -> tuple[str, dict[str, object]]:
    """The sandbox's path and body for a typed line: a text, or a ``/call`` or an ``/email``."""
    command, _, rest = text.partition(" ")
    if command == "/call":
        seconds = int(rest) if rest.strip().isdigit() else 0
        how = "answered" if seconds else "missed"
        return "/_sandbox/call", {"from": me, "to": bot, "how": how, "seconds": seconds}
    if command == "/email":
        subject, _, body = rest.partition(":")
        address = f"{me.removeprefix('whatsapp:').lstrip('+')}@chat.example"
        return "/_sandbox/email", {
            "from": address,
            "to": EMAIL_ADDRESS,
            "subject": subject.strip(),
            "text": body.strip(),
        }
    return "/_sandbox/inbound", {"from": me, "to": bot, "body": text}


def chat(
    lines: Iterable[str],
    sandbox: str,
    me: str,
    bot: str,
    linger_s: float,
    contacts: str | None = None,
) -> None:
    """``contacts``: the sandbox that places calls and sends emails (the Twilio one)."""
    replies = Replies(sandbox, me)
    replies.start()
    try:
        with httpx.Client(timeout=20) as http:
            for line in lines:
                text = line.strip()
                if not text:
                    continue
                path, body = request_of(text, me, bot)
                where = sandbox if path == "/_sandbox/inbound" else contacts or sandbox
                response = http.post(where + path, json=body)
                if response.status_code != 200 or not response.json().get("accepted"):
                    print(f"(not delivered to Parley: {response.status_code} {response.text})")
        # The input ended (a pipe, or Ctrl-D): replies still on their way are worth a wait,
        # until none has come for a while.
        replies.last_seen_at = time.monotonic()
        while time.monotonic() - replies.last_seen_at < linger_s:
            time.sleep(0.1)
    finally:
        replies.stop()


def typed() -> Iterator[str]:
    """Lines typed at the terminal, until Ctrl-D."""
    while True:
        try:
            yield input()
        except EOFError:
            return


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
    parser.add_argument("--telnyx", action="store_true", help="text through the Telnyx sandbox")
    parser.add_argument("--sandbox", default="http://127.0.0.1:8090")
    parser.add_argument("--telnyx-sandbox", default="http://127.0.0.1:8091")
    parser.add_argument(
        "--linger", type=float, default=5.0, help="seconds to wait for replies after the input"
    )
    args = parser.parse_args(argv)
    prefix = "whatsapp:" if args.whatsapp else ""
    me, bot = prefix + args.sender, prefix + args.to
    print(f"Chatting with Parley as {me} (Ctrl-D to quit).")
    texts = args.telnyx_sandbox if args.telnyx else args.sandbox
    lines = sys.stdin if not sys.stdin.isatty() else typed()
    chat(lines, texts, me, bot, args.linger, contacts=args.sandbox)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (EOFError, KeyboardInterrupt):
        print()
