"""SECURITY: fuzzed webhook bodies and headers never crash the service and never move a call unless signed.

Hypothesis generates arbitrary bytes, arbitrary JSON, real Telnyx envelopes with mutated fields, and
signature headers, and posts each to the webhook of one app. Whatever arrives unsigned or badly signed
gets 401 (413 when oversize) and sends no command, even when it names a live call; whatever arrives
validly signed gets 2xx or 4xx, never 5xx, and leaves no exception in the background work.

Timers are held still in these apps, so every command the fake Telnyx records was caused by a webhook:
a count that grows after a refused request can only be that request's doing. Runs are derandomised and
keep no example database, so CI sees the same examples every time. Each property reports how many
examples it tried and how many held (tests/figures.py); `make soak` runs ten times as many.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from background import background_failures, settle
from config import build_settings
from events import RESERVED_EVENT_TYPES, encode_client_state
from fakes import ManualScheduler
from figures import record
from fixtures import SIGNATURE_HEADER, TIMESTAMP_HEADER, fixture_names, load_fixture, new_keypair, sign, with_ids
from receptionist import Receptionist
from webhook_auth import MAX_TIMESTAMP_DIGITS
from webhooks import WEBHOOK, event, new_call_id

pytestmark = pytest.mark.both_stores

QUICK, SOAK = 1, 10  # multiplier of each property's example count: make test, make soak
SCALE = [pytest.param(QUICK, id="quick"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)]


def fuzzing(examples: int) -> hypothesis.settings:
    """Stable in CI: the same examples every run, no database, no deadline on a loaded machine."""
    return hypothesis.settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# ---------------------------------------------------------------- the app under fuzz


@pytest.fixture
def fuzz_app(make_app, raw_config, keypair, telnyx, scripted_brain, store_env):
    settings = build_settings(raw_config, {"TELNYX_PUBLIC_KEY": keypair[1], **store_env})
    receptionist = Receptionist(settings, telnyx, scripted_brain, scheduler=ManualScheduler())
    # No timer is ever armed, in either store (on Redis they would fire from Redis by the clock, whatever the
    # scheduler): no command can appear except because of a webhook, so a silence reprompt or a speech guard
    # armed by one example cannot land inside a later example's check that a forged webhook did nothing.
    receptionist.runners.schedule = lambda delay_s, call_control_id, event: None
    return make_app(settings, telnyx=telnyx, brain=scripted_brain, receptionist=receptionist)


class Tally:
    """Examples tried and held, counted inside a property and recorded once every example has held."""

    def __init__(self):
        self.attempted = self.handled = 0

    def held(self, ok: bool) -> bool:
        self.attempted += 1
        self.handled += ok
        return ok


FORGERIES = ("unsigned", "another key", "stale", "from the future", "another body's signature", "random bytes")


class Webhook:
    """Posts to one app, signed genuinely or forged, and tells whether anything happened since a mark."""

    def __init__(self, app, telnyx, key, logs):
        self.app, self.client, self.telnyx, self.key, self.logs = app, app.test_client(), telnyx, key, logs
        self.max_body = app.config["MAX_CONTENT_LENGTH"] - 1
        self._other_key = new_keypair()[0]
        self._commands = self._records = 0

    def post(self, raw: bytes, headers: Any):
        return self.client.post(WEBHOOK, data=raw, headers=headers, content_type="application/json")

    def signed(self, raw: bytes):
        return self.post(raw, sign(raw, self.key, int(time.time())))

    def forged(self, raw: bytes, how: str):
        now = int(time.time())
        headers = {
            "unsigned": {},
            "another key": sign(raw, self._other_key, now),
            # Well outside the 300 s window: the clock keeps running between signing and verifying, so a
            # timestamp one second out could drift back inside it. The exact edges are pinned in
            # tests/security/test_authenticity.py with a frozen clock.
            "stale": sign(raw, self.key, now - 310),
            "from the future": sign(raw, self.key, now + 310),
            "another body's signature": sign(raw + b" ", self.key, now),
            "random bytes": {SIGNATURE_HEADER: base64.b64encode(uuid.uuid4().bytes * 4).decode(),
                             TIMESTAMP_HEADER: str(now)},
        }[how]
        return self.post(raw, headers)

    def mark(self) -> None:
        """Remember how many commands and log records there are, before the next request."""
        settle(self.app)
        self._commands, self._records = len(self.telnyx.commands), len(self.logs.records)

    def refused(self, raw: bytes, response) -> bool:
        """401 (413 when oversize, which is checked first) and, once the workers settle, no command since the mark."""
        settle(self.app)
        expected = 413 if len(raw) > self.max_body else 401
        return response.status_code == expected and len(self.telnyx.commands) == self._commands

    def failures(self) -> list[str]:
        """Exceptions that reached background work since the mark."""
        settle(self.app)
        return background_failures(self.logs.records[self._records :])

    def survived(self, response) -> bool:
        """2xx or 4xx, and nothing escaped into background work since the mark."""
        return 200 <= response.status_code < 500 and not self.failures()

    def open_call(self) -> str:
        """A call answered and greeted, listening for the caller: where fuzzed events do the most."""
        cid = new_call_id()
        for name in ("call_initiated", "call_answered"):
            assert self.signed(wire(event(name, cid))).status_code == 200
        settle(self.app)
        return cid


def wire(body: Any, ascii_only: bool = True) -> bytes:
    """JSON bytes as a sender might write them: NaN allowed, lone surrogates passed through as CESU-8."""
    text = json.dumps(body, ensure_ascii=ascii_only, allow_nan=True, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass")


def refused_then_survived(hook: Webhook, raw: bytes, forgery: str) -> tuple[bool, str]:
    """The core check: forged, the body does nothing; genuinely signed, it does no harm."""
    hook.mark()
    forged = hook.forged(raw, forgery)
    if not hook.refused(raw, forged):
        return False, f"forged ({forgery}) got {forged.status_code} or caused a command"
    signed = hook.signed(raw)
    if not hook.survived(signed):
        return False, f"signed got {signed.status_code}: {hook.failures()[:1]}"
    return True, ""


# ---------------------------------------------------------------- strategies

ODD_STRINGS = [
    "", " ", "\u202e", "\ufeff", "\x00", "\u0085", "\U0001d54f" * 50, "é" * 3000, "9" * 4000, "1 " * 20_000,
    "a" * 30_000, "a.a@" * 2000, "NaN", "Infinity", "-0", "1e400", "../../etc", "%00", "{{7*7}}",
    "${jndi:ldap://x}", "<script>", "\\u0000", "xfer:", "xfer:v3:nope", encode_client_state("xfer:v3:nope"),
    "call.initiated", "brain.replied", "timer.fired", "leg.call.hangup", "\ud800", "a\udfffb",
]
JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.sampled_from([2**63, -(2**63) - 1, 10**400, -(10**30)])
    | st.floats() | st.text(max_size=40) | st.sampled_from(ODD_STRINGS)
)
KNOWN_KEYS = sorted({
    "data", "payload", "event_type", "id", "record_type", "occurred_at", "meta", "call_control_id",
    "call_leg_id", "call_session_id", "client_state", "from", "to", "direction", "digit", "state",
    "transcription_data", "transcript", "confidence", "is_final", "hangup_cause", "tags",
})
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8),
                                                              kids, max_size=4),
    max_leaves=12,
)
# Telnyx's own types, near misses, and the names the service gives its own events (events.py, "leg.*").
EVENT_TYPES = st.sampled_from(sorted({load_fixture(name)["data"]["event_type"] for name in fixture_names()} | {
    "call.initiated ", "CALL.ANSWERED", "call..hangup", "call.hangup\x00", "call.\u202ehangup", "leg.call.hangup",
    "leg.call.answered", "speak.failed", "transfer.failed", "__class__", "x" * 512, "x" * 513,
} | RESERVED_EVENT_TYPES))


@st.composite
def envelope_shapes(draw, live_call) -> Any:
    """Arbitrary JSON at every depth of a webhook envelope, from no envelope at all to a full one for a live call."""
    value = draw(JSON_VALUES)
    depth = draw(st.sampled_from([0, 1, 2, 3, 3, 3]))
    if depth == 0:
        return value
    if depth == 1:
        return {"data": value}
    payload = value if depth == 2 else {**(value if isinstance(value, dict) else {}), "call_control_id": live_call()}
    event_type = draw(EVENT_TYPES) if draw(st.integers(0, 4)) else draw(JSON_SCALARS)
    return {"data": {"event_type": event_type, "id": str(uuid.uuid4()), "payload": payload}}


@st.composite
def mutated_envelopes(draw, live_call) -> dict[str, Any]:
    """A recorded fixture aimed at the live call, then fields replaced by junk or removed, one to four times."""
    name = draw(st.sampled_from(fixture_names()))
    if name.startswith("transfer_leg"):  # the transfer leg is its own call, tagged with the caller's
        body = with_ids(load_fixture(name), call_control_id=new_call_id(),
                        client_state=encode_client_state("xfer:" + live_call()))
    else:
        body = with_ids(load_fixture(name), call_control_id=live_call())
    if draw(st.integers(0, 3)) == 0:
        body["data"]["event_type"] = draw(EVENT_TYPES)
    for _ in range(draw(st.integers(1, 4))):
        holders = list(objects_in(body))
        deep = draw(st.integers(0, 4)) > 0  # mostly below the envelope's top, or few bodies get past parsing
        holder = draw(st.sampled_from(holders[2:] if deep and holders[2:] else holders))
        key = draw(st.sampled_from(sorted(holder) or KNOWN_KEYS) | st.sampled_from(KNOWN_KEYS))
        if key in holder and draw(st.booleans()):
            del holder[key]
        else:
            holder[key] = draw(JSON_VALUES)
    return body


def objects_in(node: Any):
    """Every JSON object inside node, node included."""
    if isinstance(node, dict):
        yield node
        children = node.values()
    else:
        children = node if isinstance(node, list) else []
    for child in children:
        yield from objects_in(child)


# ---------------------------------------------------------------- (a) bodies


def fuzz_bodies(hook: Webhook, bodies, examples: int, threat: str, note: str, after=None) -> None:
    """Post each drawn body forged, then signed; once every example held, record how many. `after` runs after every
    example."""
    tally = Tally()

    @fuzzing(examples)
    @given(raw=bodies, forgery=st.sampled_from(FORGERIES))
    def forged_then_signed(raw: bytes, forgery: str) -> None:
        ok, why = refused_then_survived(hook, raw, forgery)
        assert tally.held(ok), why
        if after is not None:
            after()

    forged_then_signed()
    record(threat, tally.attempted, tally.handled, note)


def on_the_wire(envelopes):
    """Envelopes serialised as a sender might, ASCII-escaped or not."""
    return st.tuples(envelopes, st.booleans()).map(lambda drawn: wire(*drawn))


@pytest.mark.parametrize("scale", SCALE)
def test_arbitrary_bytes(scale, fuzz_app, telnyx, keypair, logs):
    bodies = st.binary(max_size=3000) | st.text(max_size=500).map(str.encode) | JSON_VALUES.map(wire)
    hook = Webhook(fuzz_app, telnyx, keypair[0], logs)
    fuzz_bodies(hook, bodies, 250 * scale, "fuzzed bodies: arbitrary bytes, forged then signed",
                "forged: 401 and no command; signed: no 5xx, no background exception")


@pytest.mark.parametrize("scale", SCALE)
def test_arbitrary_json_in_the_envelope(scale, fuzz_app, telnyx, keypair, logs):
    receptionist = fuzz_app.extensions["receptionist"]
    hook = Webhook(fuzz_app, telnyx, keypair[0], logs)
    live = [hook.open_call()]

    def keep_a_call_open() -> None:
        if receptionist.calls.get(live[0]) is None:
            live[0] = hook.open_call()

    fuzz_bodies(hook, on_the_wire(envelope_shapes(lambda: live[0])), 250 * scale,
                "fuzzed bodies: arbitrary JSON at every envelope depth", "aimed at a live call; forged then signed",
                after=keep_a_call_open)


@pytest.mark.parametrize("scale", SCALE)
def test_mutated_telnyx_envelopes(scale, fuzz_app, telnyx, keypair, logs):
    receptionist = fuzz_app.extensions["receptionist"]
    hook = Webhook(fuzz_app, telnyx, keypair[0], logs)
    live = {"cid": hook.open_call(), "events": 0}

    def live_call() -> str:
        if receptionist.calls.get(live["cid"]) is None or live["events"] >= 6:
            live.update(cid=hook.open_call(), events=0)
        live["events"] += 1
        return live["cid"]

    fuzz_bodies(hook, on_the_wire(mutated_envelopes(live_call)), 400 * scale,
                "fuzzed bodies: recorded envelopes with fields mutated or removed",
                "wrong types, huge and odd strings, nested junk; forged then signed")


# ---------------------------------------------------------------- (b) headers

HEADER_TEXT = st.text(st.characters(min_codepoint=1, max_codepoint=0xFF, exclude_characters="\r\n"), max_size=120)
LAYOUTS = ("both", "no signature", "no timestamp", "neither", "signature twice", "timestamp twice")


def header_list(layout: str, signature: str, stamp: str) -> list[tuple[str, str]]:
    sig, ts = (SIGNATURE_HEADER, signature), (TIMESTAMP_HEADER, stamp)
    return {
        "both": [sig, ts], "no signature": [ts], "no timestamp": [sig], "neither": [],
        "signature twice": [sig, sig, ts], "timestamp twice": [sig, ts, ts],
    }[layout]


def stamps(now: int):
    # Around the window's edges, but not within a few seconds of them: the clock moves during the request.
    near = st.integers(-400, 400).filter(lambda skew: not 290 <= abs(skew) <= 310).map(lambda skew: str(now + skew))
    padded = st.tuples(st.sampled_from(["", " ", "\t", "0", "+", "-", "\xa0"]), near,
                       st.sampled_from(["", " ", "\t", ".0", "\xa0"])).map("".join)
    return near | padded | st.integers().map(str) | HEADER_TEXT | st.just(str(now))


def signatures(data, raw: bytes, key, stamp: str) -> str:
    genuine = sign(raw, key, stamp.strip())[SIGNATURE_HEADER]
    flipped = data.draw(st.integers(0, len(genuine) - 3))
    return data.draw(st.sampled_from([
        genuine, " " + genuine + " ", sign(raw, key, stamp)[SIGNATURE_HEADER],
        genuine[:flipped] + ("A" if genuine[flipped] != "A" else "B") + genuine[flipped + 1:],
        genuine.rstrip("="), base64.urlsafe_b64encode(base64.b64decode(genuine)).decode(),
    ]) | st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()) | HEADER_TEXT)


def authentic(headers: list[tuple[str, str]], raw: bytes, key, now: int) -> bool:
    """What the headers should earn, decided independently: one of each, the exact signature, a fresh stamp."""
    names = [name for name, _ in headers]
    if sorted(names) != sorted([SIGNATURE_HEADER, TIMESTAMP_HEADER]):
        return False
    values = dict(headers)
    stamp = values[TIMESTAMP_HEADER].strip()
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= MAX_TIMESTAMP_DIGITS):
        return False
    fresh = abs(now - int(stamp)) <= 300
    return fresh and values[SIGNATURE_HEADER].strip() == sign(raw, key, stamp)[SIGNATURE_HEADER]


@pytest.mark.parametrize("scale", SCALE)
def test_arbitrary_signature_headers(scale, fuzz_app, telnyx, keypair, logs):
    tally, key = Tally(), keypair[0]
    hook = Webhook(fuzz_app, telnyx, key, logs)

    @fuzzing(300 * scale)
    @given(data=st.data(), layout=st.sampled_from(LAYOUTS))
    def arbitrary_headers(data, layout: str) -> None:
        cid, now = new_call_id(), int(time.time())
        raw = wire(event("call_initiated", cid))
        stamp = data.draw(stamps(now), label="timestamp")
        headers = header_list(layout, signatures(data, raw, key, stamp), stamp)
        expected = authentic(headers, raw, key, now)
        hook.mark()
        response = hook.post(raw, headers)
        if expected:
            ok = response.status_code == 200 and hook.survived(response) and telnyx.actions(cid) == ["answer"]
        else:
            ok = hook.refused(raw, response) and hook.survived(response)
        assert tally.held(ok), f"{layout} {headers!r}: {response.status_code}, authentic={expected}"

    arbitrary_headers()
    record("fuzzed signature and timestamp headers", tally.attempted, tally.handled,
           "401 and no command unless exactly authentic; never 5xx")
