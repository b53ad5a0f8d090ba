"""The whole simulated network in one object: key, fake API, carrier and webhook delivery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from simulator.carrier import Carrier
from simulator.delivery import DeliveryOptions, WebhookDelivery
from simulator.fake_telnyx import FakeTelnyx
from simulator.faults import FaultPlan
from simulator.signing import WebhookSigner
from workers import Scheduler

SIMULATED_API_KEY = "simulated-key"
WEBHOOK_PATH = "/webhooks/telnyx"


def webhook_urls(service_urls: str | Sequence[str]) -> tuple[str, ...]:
    """The webhook endpoint of each service instance, from its base URL."""
    bases = (service_urls,) if isinstance(service_urls, str) else tuple(service_urls)
    return tuple(f"{base.rstrip('/')}{WEBHOOK_PATH}" for base in bases)


@dataclass
class NetworkOptions:
    """Knobs for a run: speech speed factor, delivery chaos and API faults."""

    speed: float = 1.0
    delivery: DeliveryOptions = field(default_factory=DeliveryOptions)
    faults: FaultPlan = field(default_factory=FaultPlan)
    api_port: int = 0
    seed: int | None = None


class Network:
    """Start it (a context manager), point the service at `service_env()`, then set `webhook_url(s)`."""

    def __init__(self, options: NetworkOptions | None = None, signer: WebhookSigner | None = None,
                 webhook_url: str | Sequence[str] = ""):
        self.options = options or NetworkOptions()
        self.signer = signer or WebhookSigner.generate()
        self.scheduler = Scheduler()
        self.delivery = WebhookDelivery(webhook_url, self.signer, self.options.delivery)
        self.carrier = Carrier(self.delivery.deliver, speed=self.options.speed, scheduler=self.scheduler)
        self.delivery.log.listeners.append(self.carrier.delivered)
        self.fake = FakeTelnyx(self.carrier, self.options.faults, port=self.options.api_port, seed=self.options.seed)

    @property
    def webhook_url(self) -> str:
        return self.delivery.url

    @webhook_url.setter
    def webhook_url(self, url: str) -> None:
        self.delivery.url = url

    @property
    def webhook_urls(self) -> tuple[str, ...]:
        return self.delivery.targets.urls

    @webhook_urls.setter
    def webhook_urls(self, urls: Sequence[str]) -> None:
        self.delivery.url = urls

    def service_env(self) -> dict[str, str]:
        """What the service needs in its environment to talk to this network."""
        return {
            "TELNYX_API_KEY": SIMULATED_API_KEY,
            "TELNYX_PUBLIC_KEY": self.signer.public_key_b64,
            "TELNYX_BASE_URL": self.fake.base_url,
        }

    def start(self) -> Network:
        self.fake.start()
        return self

    def stop(self) -> None:
        self.delivery.wait_idle(timeout_s=5)
        self.fake.stop()
        self.delivery.close()
        self.scheduler.stop()

    def __enter__(self) -> Network:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
