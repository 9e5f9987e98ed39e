"""An inbound-email service, as SendGrid's Inbound Parse is to Parley: it turns an email into a
``multipart/form-data`` post of its parts (``from``, ``to``, ``subject``, ``text``,
``headers``, ``envelope``, attachments as files) and signs it the way SendGrid signs its
webhooks (ECDSA P-256 over the timestamp and the body), so ``./dev run`` and the tests need
no account."""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


@dataclass(frozen=True)
class Email:
    """An email as a person writes it; ``sender`` may carry a name ("Ann <ann@…>")."""

    sender: str
    to: str
    subject: str
    text: str
    message_id: str | None = None
    # File name -> contents.
    attachments: dict[str, bytes] = field(default_factory=dict)


@dataclass
class EmailSandbox:
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @classmethod
    def from_pem(cls, pem: str) -> EmailSandbox:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("not an elliptic-curve private key")
        return cls(key)

    @property
    def private_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @property
    def public_key(self) -> str:
        """The verification key as SendGrid shows it (EMAIL_WEBHOOK_PUBLIC_KEY)."""
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def signed(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: stamp}

    @staticmethod
    def form(email: Email) -> tuple[bytes, str]:
        """An Inbound Parse post of an email: (body, content type)."""
        message_id = email.message_id or f"<{secrets.token_hex(12)}@mail.example>"
        address = email.sender.split("<")[-1].rstrip(">").strip()
        headers = f"From: {email.sender}\nTo: {email.to}\nSubject: {email.subject}\n"
        fields = {
            "headers": f"{headers}Message-ID: {message_id}\n",
            "from": email.sender,
            "to": email.to,
            "subject": email.subject,
            "text": email.text,
            "envelope": json.dumps({"from": address, "to": [email.to]}),
            "charsets": json.dumps({"from": "UTF-8", "to": "UTF-8", "subject": "UTF-8"}),
            "SPF": "pass",
            "attachments": str(len(email.attachments)),
        }
        boundary = "parley-" + secrets.token_hex(12)
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            for name, value in fields.items()
        ]
        parts += [
            f'--{boundary}\r\nContent-Disposition: form-data; name="attachment{index}"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + data
            for index, (name, data) in enumerate(email.attachments.items(), start=1)
        ]
        body = b"\r\n".join(parts) + f"\r\n--{boundary}--\r\n".encode()
        return body, f"multipart/form-data; boundary={boundary}"

    async def post(self, url: str, email: Email) -> httpx.Response:
        """Post an email to the gateway at ``url``, signed."""
        body, content_type = self.form(email)
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(
                url, content=body, headers={"content-type": content_type, **self.signed(body)}
            )
