"""Recorded-style Telnyx v2 webhook fixtures, and signing them the way Telnyx does.

Bodies live in tests/fixtures/*.json. Tests sign the exact bytes they send with an Ed25519 key
generated for the run (``new_keypair``), so nothing here is a real secret.
"""

from __future__ import annotations

import base64
import copy
import json
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
_UNSET: Any = object()


def fixture_names() -> list[str]:
    """Every fixture's name (file name without .json), sorted."""
    return sorted(path.stem for path in FIXTURES_DIR.glob("*.json"))


def load_fixture(name: str) -> dict[str, Any]:
    """A fresh copy of a fixture body; `name` may include `.json`."""
    return copy.deepcopy(_read(name.removesuffix(".json")))


@cache
def _read(name: str) -> dict[str, Any]:
    """Parse a fixture file once."""
    return json.loads((FIXTURES_DIR / f"{name}.json").read_text(encoding="utf-8"))


def with_ids(
    body: dict[str, Any],
    *,
    event_id: str | None = None,
    call_control_id: str | None = None,
    call_leg_id: str | None = None,
    call_session_id: str | None = None,
    occurred_at: str | None = None,
    client_state: str | None = _UNSET,
) -> dict[str, Any]:
    """A copy of body with a fresh data.id (or event_id) and any other ids given replaced."""
    variant = copy.deepcopy(body)
    data, payload = variant["data"], variant["data"]["payload"]
    data["id"] = event_id or str(uuid.uuid4())
    if occurred_at is not None:
        data["occurred_at"] = occurred_at
    leg_ids = {"call_control_id": call_control_id, "call_leg_id": call_leg_id, "call_session_id": call_session_id}
    payload.update({key: value for key, value in leg_ids.items() if value is not None})
    if client_state is not _UNSET:
        payload["client_state"] = client_state
    return variant


def encode(body: dict[str, Any]) -> bytes:
    """Compact JSON bytes, as Telnyx sends them."""
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def new_keypair() -> tuple[Ed25519PrivateKey, str]:
    """A fresh Ed25519 private key and its public key in base64 (the TELNYX_PUBLIC_KEY format)."""
    private_key = Ed25519PrivateKey.generate()
    raw_public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private_key, base64.b64encode(raw_public).decode("ascii")


def sign(raw_body: bytes, private_key: Ed25519PrivateKey, timestamp: int | str) -> dict[str, str]:
    """Telnyx's headers for raw_body: an Ed25519 signature over `"{timestamp}|" + raw_body`."""
    signature = private_key.sign(f"{timestamp}|".encode() + raw_body)
    return {SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"), TIMESTAMP_HEADER: str(timestamp)}


def signed(
    body: dict[str, Any], private_key: Ed25519PrivateKey, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The raw bytes of body and headers signing them, stamped now unless told otherwise."""
    raw_body = encode(body)
    stamp = int(time.time()) if timestamp is None else timestamp
    return raw_body, {**sign(raw_body, private_key, stamp), "Content-Type": "application/json"}
