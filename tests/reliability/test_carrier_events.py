"""RELIABILITY: carrier events that are stray, stale, or on the transfer leg, played through the simulated network.

The simulator's carrier plays speech in (scaled) real time and echoes client_state as the spec says Telnyx
does ("state added to every subsequent webhook"). While the assistant's speech plays, call.speak.ended
webhooks that do not end it arrive: the greeting's delivered again, another application's, one without
client_state. What waits for the speech (the transfer after its announcement, the hangup after the goodbye)
must still wait until the caller has heard it. On the staff member's leg of a transfer, key presses (a PBX
feature code) and speech must never start anything, also after a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from background import serve, settle, wait_until
from events import encode_client_state, speech_client_state
from figures import record
from simulator import events
from simulator.carrier import SimCall, Speech, TransferPlan
from simulator.events import WebhookEvent
from simulator.network import Network, NetworkOptions
from webhooks import WEBHOOK

pytestmark = pytest.mark.both_stores

CALLER, CLINIC = "+13125550111", "+13125550100"
SPEED = 0.5  # simulated speech at twice real time: the long lines below play for a few seconds
GREETING = "Hello, you have reached the automated assistant."
ANNOUNCEMENT = ("One moment please. I am putting you through to a member of our team now, so please stay on "
                "the line while I connect you; it should not take long at all.")
GOODBYE = ("Thank you for calling Bright Smile Dental. We look forward to seeing you soon, and we hope you "
           "have a wonderful rest of your day. Goodbye!")


def strays(call: SimCall) -> list[WebhookEvent]:
    """call.speak.ended webhooks that end none of the speech playing now."""
    def ended(client_state: str | None) -> WebhookEvent:
        return WebhookEvent("call.speak.ended", {**call.a.common(), "client_state": client_state,
                                                 "status": "completed"})

    return [ended(speech_client_state(1)), ended(encode_client_state("campaign=7")), ended(None)]


@pytest.fixture
def network() -> Iterator[Network]:
    with Network(NetworkOptions(speed=SPEED)) as net:
        yield net


@pytest.fixture
def service_config(raw_config) -> dict[str, Any]:
    raw_config["assistant"].update(greeting=GREETING, transfer_announcement=ANNOUNCEMENT, goodbye=GOODBYE)
    raw_config["dialog"]["silence_timeout_s"] = 30
    return raw_config


@contextmanager
def serving(make_app, config: dict[str, Any], network: Network) -> Iterator[Any]:
    """The service in this process on a loopback port, talking to the simulated network."""
    app = make_app(config, env=network.service_env())
    with serve(app) as url:
        network.webhook_url = url + WEBHOOK
        yield app


def greeted(network: Network, app) -> SimCall:
    """A call whose greeting has been heard, and whose webhooks so far the service has handled."""
    carrier = network.carrier
    call = carrier.place_call(CALLER, CLINIC, TransferPlan(answer=True, ring_s=0.2, talk_s=60))
    assert carrier.wait(lambda: call.answered and call.transcribing and not call.speaking, 10), call.timeline
    assert network.delivery.wait_idle(5)
    settle(app)
    return call


def playing(network: Network, call: SimCall, words: str) -> Speech:
    """The speech containing `words`, once the caller is hearing it."""
    def now_playing() -> bool:
        return call.current is not None and words in call.current.text

    assert network.carrier.wait(now_playing, 10), call.timeline
    return call.current


def inject_while_playing(network: Network, app, call: SimCall, speech: Speech) -> list[str]:
    """Deliver the strays, let the service handle them, and check the speech was still playing meanwhile."""
    injected = strays(call)
    for stray in injected:
        network.delivery.deliver(stray)
    assert network.delivery.wait_idle(5)
    settle(app)
    assert speech.ended_at is None, "the speech ended before the strays were handled: the test proves nothing"
    ids = {stray.event_id for stray in injected}
    accepted = [a.event_id for a in network.delivery.log.attempts if a.event_id in ids and a.ok]
    assert sorted(accepted) == sorted(ids)
    return accepted


def first_request(network: Network, call: SimCall, action: str):
    assert wait_until(lambda: network.fake.requests_for(call.call_control_id, action=action), 15), call.timeline
    return network.fake.requests_for(call.call_control_id, action=action)[0]


def test_stray_speak_ended_webhooks_never_cut_the_transfer_announcement_short(
    network, make_app, service_config, store_kind
):
    with serving(make_app, service_config, network) as app:
        call = greeted(network, app)
        network.carrier.press(call, "0")
        announcement = playing(network, call, ANNOUNCEMENT)
        injected = inject_while_playing(network, app, call, announcement)
        transfer = first_request(network, call, "transfer")
        assert network.carrier.wait(lambda: call.bridged_to is not None, 10), call.timeline
    heard_first = announcement.status == "completed" and announcement.ended_at <= transfer.at
    assert heard_first, call.timeline
    assert len(network.fake.requests_for(call.call_control_id, action="transfer")) == 1
    record("stray or stale call.speak.ended while the transfer announcement plays", len(injected),
           len(injected) * heard_first,
           "the greeting's again, another application's, one without client_state; transferred after it was heard")


def test_stray_speak_ended_webhooks_never_hang_up_in_the_middle_of_the_goodbye(
    network, make_app, service_config, store_kind
):
    with serving(make_app, service_config, network) as app:
        call = greeted(network, app)
        network.carrier.say(call, "thank you bye", 0.95)
        goodbye = playing(network, call, GOODBYE)
        injected = inject_while_playing(network, app, call, goodbye)
        hangup = first_request(network, call, "hangup")
        assert network.carrier.wait(lambda: call.ended, 10), call.timeline
    heard_first = goodbye.status == "completed" and goodbye.ended_at <= hangup.at
    assert heard_first and call.hangup_source == "callee", call.timeline
    record("stray or stale call.speak.ended while the goodbye plays", len(injected), len(injected) * heard_first,
           "the assistant hangs up after the whole goodbye was heard")


def test_the_transfer_leg_never_starts_anything_before_or_after_a_restart(
    network, make_app, service_config, store_kind
):
    """The staff member presses keys (a PBX feature code such as *2) and speaks on their leg, first while this
    process holds the call, then after a restart: in memory the call's state is gone, on Redis it is kept."""
    def from_staff() -> list[WebhookEvent]:
        return [events.dtmf_received(staff, "*"), events.dtmf_received(staff, "2"),
                events.dtmf_received(staff, "0"), events.transcription(staff, "operator", 0.95)]

    def commands() -> int:
        return len(network.fake.requests_for(call.call_control_id, staff.call_control_id))

    def deliver_and_count(app, webhooks: list[WebhookEvent]) -> int:
        for webhook in webhooks:
            network.delivery.deliver(webhook)
        assert network.delivery.wait_idle(5)
        settle(app)
        return commands()

    sent: list[int] = []
    with serving(make_app, service_config, network) as app:
        call = greeted(network, app)
        network.carrier.press(call, "0")
        assert network.carrier.wait(lambda: call.bridged_to is not None, 15), call.timeline
        staff = call.b_legs[0]
        assert wait_until(lambda: network.fake.requests_for(call.call_control_id, action="transcription_stop"), 5)
        sent.append(commands())
        sent.append(deliver_and_count(app, from_staff()))
    app.extensions["receptionist"].shutdown()  # the process stops; what it held in memory is gone
    with serving(make_app, service_config, network) as restarted:
        sent.append(deliver_and_count(restarted, from_staff()))
    delivered = [a for a in network.delivery.log.attempts if a.call_control_id == staff.call_control_id and a.ok]
    assert sent == [sent[0]] * 3, call.timeline
    assert network.fake.requests_for(staff.call_control_id) == []
    assert call.bridged_to is not None and not call.ended and staff.state == "answered"
    assert len(delivered) >= 2 * len(from_staff())
    record("key presses and speech on the transfer leg (live call, then restart)", 2 * len(from_staff()),
           2 * len(from_staff()) * (sent == [sent[0]] * 3), "no command to either leg; the call stays bridged")
