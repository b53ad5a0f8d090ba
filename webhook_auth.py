"""Ed25519 verification of Telnyx webhooks, over the raw body, before anything is parsed.

During a key rotation two public keys are trusted at once (TELNYX_PUBLIC_KEY="old,new"): a webhook signed by
either is accepted, so no webhook is refused while Telnyx switches keys.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from config import WebhookConfig

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
# Unix seconds have 10 digits until the year 2286; a longer "timestamp" is an attack on int(), not a clock.
MAX_TIMESTAMP_DIGITS = 12


class SignatureError(Exception):
    """The webhook is not provably from Telnyx; the message says why, without secrets."""


def load_public_key(public_key_b64: str) -> Ed25519PublicKey:
    """Decode the portal's base64 public key; raise ValueError when it is not a 32-byte Ed25519 key."""
    try:
        raw = base64.b64decode(public_key_b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("public key is not valid base64") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_public_keys(public_keys: Sequence[str]) -> list[Ed25519PublicKey]:
    """Every trusted key (one, or two during a rotation); ValueError names the first that is unusable."""
    if not public_keys:
        raise ValueError("no public key given")
    return [load_public_key(key) for key in public_keys]


class WebhookVerifier:
    """Checks `telnyx-signature-ed25519` over `"{telnyx-timestamp}|{raw body}"` within a time window."""

    def __init__(
        self,
        public_key: Ed25519PublicKey | Sequence[Ed25519PublicKey],
        tolerance_s: int = WebhookConfig().timestamp_tolerance_s,
        clock=time.time,
    ):
        self.public_keys = [public_key] if isinstance(public_key, Ed25519PublicKey) else list(public_key)
        self.tolerance_s = tolerance_s
        self.clock = clock

    def verify(self, raw_body: bytes, headers: Mapping[str, str]) -> None:
        """Return quietly for an authentic, fresh webhook; raise SignatureError otherwise."""
        signature = _single_header(headers, SIGNATURE_HEADER)
        timestamp = _single_header(headers, TIMESTAMP_HEADER)
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > MAX_TIMESTAMP_DIGITS:
            raise SignatureError("timestamp is not unix seconds")
        if abs(self.clock() - int(timestamp)) > self.tolerance_s:
            raise SignatureError("timestamp outside the allowed window")
        try:
            decoded = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SignatureError("signature is not valid base64") from exc
        if len(decoded) != 64:
            raise SignatureError("signature has the wrong length")
        signed = timestamp.encode() + b"|" + raw_body
        if not any(_signed_by(key, decoded, signed) for key in self.public_keys):
            raise SignatureError("signature does not match")


def _signed_by(key: Ed25519PublicKey, signature: bytes, signed: bytes) -> bool:
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        return False
    return True


def _single_header(headers: Mapping[str, str], name: str) -> str:
    """Exactly one value, matched case-insensitively (werkzeug's Headers already folds case)."""
    getlist = getattr(headers, "getlist", None)
    values = getlist(name) if getlist else [v for k, v in headers.items() if k.lower() == name]
    if not values:
        raise SignatureError(f"missing {name} header")
    if len(values) > 1:
        raise SignatureError(f"more than one {name} header")
    return values[0].strip()
