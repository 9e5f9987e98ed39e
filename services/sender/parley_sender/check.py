"""``python -m parley_sender.check [--fix]``: does this Twilio account send to this Parley?

Checks the credentials, lists the account's numbers and Messaging Services, and says for each
whether incoming messages reach ``PUBLIC_BASE_URL``, with the fix for each that does not;
``--fix`` points the numbers' webhooks at Parley. The sender serves the same report at
``GET /v1/twilio/check`` for the console. Exits 0 when all is well, 1 when something needs a
fix, 2 when Twilio refuses the credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import BaseModel

from parley_sender.settings import TwilioSettings
from parley_sender.setup_check import INBOUND_PATH, Finding, check
from parley_sender.twilio_account import AccountError, TwilioAccount
from parley_shared.tenancy import ADMIN, Caller


class Report(BaseModel):
    account: str
    public_base_url: str
    ok: bool
    findings: list[Finding]


async def report(account: TwilioAccount, public_base: str, who: Caller = ADMIN) -> Report:
    """Raises AccountError when the credentials are refused. A tenant's report covers only
    its own numbers and Messaging Services."""
    name = await account.name()
    numbers = [n for n in await account.numbers() if who.owns(n.phone_number)]
    services = [
        s
        for s in await account.messaging_services()
        if who.messaging_services is None or s.sid in who.messaging_services
    ]
    findings = check(numbers, services, public_base)
    return Report(
        account=name,
        public_base_url=public_base,
        ok=all(f.ok for f in findings),
        findings=findings,
    )


def account_of(settings: TwilioSettings) -> TwilioAccount:
    return TwilioAccount(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        str(settings.twilio_api_base_url),
    )


async def run(settings: TwilioSettings, fix: bool) -> int:
    account = account_of(settings)
    public_base = str(settings.public_base_url).rstrip("/")
    try:
        found = await report(account, public_base)
        print(f"Twilio account {found.account}; Parley at {public_base}")
        for finding in found.findings:
            print(f"  {'ok ' if finding.ok else 'FIX'} {finding.subject} ({finding.sid})")
            if not finding.ok:
                print(f"      {finding.problem}\n      fix: {finding.fix}")
        if fix:
            for finding in found.findings:
                if not finding.ok and finding.sid.startswith("PN"):
                    await account.point_number(finding.sid, public_base + INBOUND_PATH)
                    print(f"  fixed {finding.subject}")
            found = await report(account, public_base)
        return 0 if found.ok else 1
    except AccountError as exc:
        print(f"Twilio account check failed: {exc}", file=sys.stderr)
        return 2
    finally:
        await account.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fix", action="store_true", help="point the numbers at Parley")
    args = parser.parse_args(argv)
    from parley_shared.runtime import load_settings

    return asyncio.run(run(load_settings(TwilioSettings), args.fix))


if __name__ == "__main__":
    raise SystemExit(main())
