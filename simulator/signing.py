"""The simulator's Ed25519 webhook key: generate, save, load, sign like Telnyx does."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"


@dataclass(frozen=True)
class WebhookSigner:
    """Signs `f"{timestamp}|{raw_body}"` and exposes the base64 public key for TELNYX_PUBLIC_KEY."""

    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> WebhookSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: str | Path) -> WebhookSigner:
        """Reuse the 32-byte raw private key stored (base64) in `path`, creating it on first use."""
        key_file = Path(path)
        if key_file.exists():
            raw = base64.b64decode(key_file.read_text().strip())
            return cls(Ed25519PrivateKey.from_private_bytes(raw))
        signer = cls.generate()
        key_file.write_text(signer.private_key_b64() + "\n")
        key_file.chmod(0o600)
        return signer

    def private_key_b64(self) -> str:
        raw = self.private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return base64.b64encode(raw).decode("ascii")

    @property
    def public_key_b64(self) -> str:
        raw = self.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    def headers(self, raw_body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The two headers Telnyx sends with every webhook."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private_key.sign(stamp.encode() + b"|" + raw_body)
        return {
            SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
            TIMESTAMP_HEADER: stamp,
            "Content-Type": "application/json",
        }
