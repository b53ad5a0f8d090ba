"""Sends one delivery: an SMS through Telnyx's Messaging API, or a signed webhook. One attempt each; the outbox
(outbox.py) decides about retries.

Both carry the delivery's id so the receiving side acts once however often an attempt is repeated: Telnyx
takes it as the `Idempotency-Key` header, a webhook receiver as `webhook-id` (Standard Webhooks: the id, a
timestamp and an HMAC-SHA256 signature over "id.timestamp.body", sent as `v1,<base64>`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import requests

from outbox import Delivery, DeliveryFailed
from staff_messages import StaffMessage, sms_text, webhook_payload

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
E164_DIGITS = range(7, 16)  # digits after the "+"


class MessageSenders:
    """The send function for each channel, sharing one HTTP session with no redirects and fixed timeouts."""

    def __init__(self, telnyx_base_url: str, telnyx_api_key: str, webhook_secret: bytes,
                 clock: Callable[[], float] = time.time):
        self.messages_url = telnyx_base_url.rstrip("/") + "/messages"
        self.api_key, self.webhook_secret, self.clock = telnyx_api_key, webhook_secret, clock
        self.session = requests.Session()
        self.session.trust_env = False  # read no proxy or netrc per request; see telnyx_client for the reasoning

    def channels(self) -> dict[str, Callable[[Delivery], None]]:
        return {"sms": self.send_sms, "webhook": self.send_webhook}

    def send_sms(self, delivery: Delivery) -> None:
        message = StaffMessage(**delivery.message)
        if not is_e164(message.called):
            raise DeliveryFailed(f"no number to send from (the dialled number is {message.called or 'unknown'})",
                                 retry=False)
        body = {"from": message.called, "to": delivery.to, "text": sms_text(message)}
        headers = {"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": delivery.id}
        self._post(self.messages_url, json.dumps(body).encode(), headers)

    def send_webhook(self, delivery: Delivery) -> None:
        body = json.dumps(webhook_payload(StaffMessage(**delivery.message), delivery.id)).encode()
        headers = signed_headers(self.webhook_secret, delivery.id, int(self.clock()), body)
        self._post(delivery.to, body, headers)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            response = self.session.post(url, data=body, headers={"Content-Type": "application/json", **headers},
                                         timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S), allow_redirects=False,
                                         stream=True)
        except requests.Timeout as exc:
            raise DeliveryFailed("timed out", retry=True) from exc
        except requests.RequestException as exc:
            raise DeliveryFailed(f"cannot connect: {type(exc).__name__}", retry=True) from exc
        response.close()  # the status is the answer; the body (an echo of the message) is not needed
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code}", retry=response.status_code in RETRY_STATUSES)


def signed_headers(secret: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers: webhook-id, webhook-timestamp, webhook-signature = v1,base64(HMAC-SHA256)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,{signature}"}


def is_e164(number: str) -> bool:
    digits = number[1:]
    return number.startswith("+") and digits.isascii() and digits.isdigit() and len(digits) in E164_DIGITS \
        and not digits.startswith("0")
