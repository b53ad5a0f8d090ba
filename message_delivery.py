"""Taking a caller's message for delivery: one outbox entry per recipient, then the outbox thread sends them.

Wiring only: who receives (messages.sms_to, messages.webhook_url), which outbox (the store's: Redis when the
calls are in Redis, else memory), and the senders. The runner calls `take`, which only writes to the outbox.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from call_log import CallLog, mask_number
from config import Settings
from env_secrets import webhook_secret_bytes
from message_senders import MessageSenders
from outbox import Delivery, MemoryOutbox, Outbox, OutboxWorker, Send
from staff_messages import StaffMessage
from telnyx_client import command_id_for

log = logging.getLogger(__name__)


class MessageDelivery:
    """Adds a message's deliveries to the outbox and runs the thread that sends them."""

    def __init__(self, settings: Settings, outbox: Outbox, senders: dict[str, Send],
                 clock: Callable[[], float] = time.time):
        config = settings.messages
        self.outbox, self.clock = outbox, clock
        self.recipients = [("sms", number) for number in config.sms_to]
        self.recipients += [("webhook", config.webhook_url)] if config.webhook_url else []
        self.worker = OutboxWorker(outbox, senders, CallLog(settings.call_log.path), config.max_attempts,
                                   config.first_retry_s, clock)

    def start(self) -> None:
        if self.recipients:
            self.worker.start()
        else:
            log.info("messages: no messages.sms_to or messages.webhook_url; a message is kept in the call log only")

    def stop(self) -> None:
        self.worker.stop()

    def take(self, message: StaffMessage, origin: str) -> list[str]:
        """Queue the message for every recipient; `origin` (the command's id) makes a repeat add nothing."""
        ids = []
        for channel, to in self.recipients:
            delivery = Delivery(command_id_for(origin, channel, to), channel, to, message.as_dict())
            if not self.outbox.add(delivery, self.clock()):
                log.info("call=%s delivery=%s:%s already queued", message.call_control_id, channel,
                         mask_number(to) if channel == "sms" else "webhook")
            ids.append(delivery.id)
        self.worker.wake()
        return ids

    def statuses(self, delivery_ids: list[str]) -> list[dict[str, Any]]:
        """For the call log: each delivery's status when the call ended (its final one gets a line of its own)."""
        return [{"delivery_id": item, "status": self.outbox.status(item)} for item in delivery_ids]


def build_message_delivery(settings: Settings, store: Any, clock: Callable[[], float] = time.time) -> MessageDelivery:
    """On the store's Redis when it has one (shared by every worker and instance), else in memory."""
    outbox: Outbox
    client = getattr(store, "redis", None)
    if client is not None:
        from stores.redis_outbox import RedisOutbox

        outbox = RedisOutbox(client, settings.redis.key_prefix, store.outage)
    else:
        outbox = MemoryOutbox()
    secrets = settings.secrets
    senders = MessageSenders(secrets.telnyx_base_url, secrets.telnyx_api_key,
                             webhook_secret_bytes(secrets.messages_webhook_secret), clock)
    return MessageDelivery(settings, outbox, senders.channels(), clock)
