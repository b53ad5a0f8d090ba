"""events.py: webhook bodies parsed into CallEvents (and every way one is refused), client_state, internal events."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from events import (
    INTERNAL_EVENTS,
    MAX_ID_CHARS,
    RESERVED_EVENT_TYPES,
    SPEECH_TAG,
    TRANSFER_TAG,
    BadEvent,
    CallEvent,
    LegEvent,
    encode_client_state,
    fingerprint,
    parse_event,
    speech_client_state,
    transfer_client_state,
)
from fixtures import encode, fixture_names, load_fixture

CALL = "v3:x"


def body_with(event_type: str = "call.dtmf.received", **payload) -> bytes:
    """A real fixture's bytes with the event type and payload fields given."""
    body = load_fixture("call_dtmf_received")
    body["data"]["event_type"] = event_type
    body["data"]["payload"].update(payload)
    return encode(body)


def event_with(**payload) -> CallEvent:
    return parse_event(body_with(**payload))


# ---------------------------------------------------------------- what is accepted


def test_a_fixture_becomes_a_call_event():
    body = load_fixture("call_initiated")
    event = parse_event(encode(body), received_at=12.5)
    assert event.event_id == body["data"]["id"]
    assert (event.event_type, event.occurred_at) == ("call.initiated", body["data"]["occurred_at"])
    assert event.call_control_id == body["data"]["payload"]["call_control_id"]
    assert event.payload == body["data"]["payload"] and event.received_at == 12.5


@pytest.mark.parametrize("name", fixture_names())
def test_every_fixture_parses(name):
    body = load_fixture(name)
    assert parse_event(encode(body)).event_type == body["data"]["event_type"]


def test_missing_occurred_at_is_an_empty_string_and_a_missing_id_the_event_s_fingerprint():
    body = load_fixture("call_answered")
    del body["data"]["id"], body["data"]["occurred_at"]
    event = parse_event(encode(body))
    assert (event.event_id, event.occurred_at) == (fingerprint(body["data"]), "")
    assert event.event_id.startswith("sha256:") and len(event.event_id) == len("sha256:") + 64


def test_ids_up_to_the_limit_are_kept():
    cid = "v3:" + "c" * (MAX_ID_CHARS - 3)
    assert parse_event(body_with(call_control_id=cid)).call_control_id == cid


def test_an_over_long_data_id_is_replaced_by_the_fingerprint_not_refused():
    body = load_fixture("call_answered")
    body["data"]["id"] = "e" * (MAX_ID_CHARS + 1)
    assert parse_event(encode(body)).event_id == fingerprint(body["data"])


def without_id(name: str = "call_answered") -> dict:
    body = load_fixture(name)
    del body["data"]["id"]
    return body


def redelivered(body: dict) -> bytes:
    """The same event as Telnyx delivers it again: another attempt, maybe to the failover URL, keys reordered."""
    again = {"meta": {"delivered_to": "https://failover.example.com/hook", "attempt": 3}, "data": body["data"]}
    again["data"] = dict(reversed(list(again["data"].items())))
    return json.dumps(again, indent=2).encode()


def test_a_redelivery_without_data_id_has_the_same_fingerprint():
    body = without_id()
    first = parse_event(encode(body)).event_id
    assert parse_event(redelivered(body)).event_id == first
    del body["meta"]
    assert parse_event(encode(body)).event_id == first


def test_a_body_nested_as_deep_as_the_parser_allows_has_a_fingerprint_or_is_refused():
    """Hashing walks the whole of `data`: whatever nesting parses must hash too, never raise RecursionError."""
    outcomes = set()
    for depth in range(900, 1200, 7):
        head = b'{"data":{"event_type":"call.dtmf.received","payload":{"call_control_id":"v3:x","n":'
        raw = head + b"[" * depth + b"]" * depth + b"}}}"
        try:
            outcomes.add(parse_event(raw).event_id[:7])
        except BadEvent:
            outcomes.add("refused")
    assert outcomes == {"sha256:", "refused"}


@pytest.mark.parametrize(
    "change",
    [lambda d: d.update(occurred_at="2026-03-02T15:04:10.000000Z"), lambda d: d.update(event_type="call.hangup"),
     lambda d: d["payload"].update(call_control_id="v3:another"), lambda d: d["payload"].update(client_state="eA=="),
     lambda d: d["payload"].update(extra=[1, 2])],
    ids=["occurred_at", "event type", "call", "client_state", "one more field"],
)
def test_different_events_without_data_id_have_different_fingerprints(change):
    body = without_id()
    other = copy.deepcopy(body)
    change(other["data"])
    assert parse_event(encode(body)).event_id != parse_event(encode(other)).event_id


def test_a_surrogate_pair_escape_is_valid_json():
    raw = body_with().replace(b'"digit":"0"', b'"digit":"\\ud83d\\udcde"')
    assert parse_event(raw).payload["digit"] == "\U0001f4de"


# ---------------------------------------------------------------- what is refused, and why


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "missing data object"),
        (b'{"data": []}', "missing data object"),
        (b'{"data": {"event_type": "call.initiated"}}', "missing data.payload"),
        (b'{"data": {"event_type": "call.initiated", "payload": "x"}}', "missing data.payload object"),
        (b'{"data": {"payload": {"call_control_id": "v3:x"}}}', "missing data.event_type"),
        (b'{"data": {"event_type": "call.initiated", "payload": {}}}', "missing data.payload.call_control_id"),
        (b'{"data": {"event_type": 7, "payload": {"call_control_id": "v3:x"}}}', "missing data.event_type"),
        (b'{"data": {"event_type": "", "payload": {"call_control_id": "v3:x"}}}', "missing data.event_type"),
        (b'{"data": {"event_type": "call.hangup", "payload": {"call_control_id": 7}}}', "call_control_id"),
        (b"[" * 30_000 + b"]" * 30_000, "not valid JSON"),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(raw, message):
    with pytest.raises(BadEvent, match=message):
        parse_event(raw)


@pytest.mark.parametrize(
    "field, message",
    [("event_type", "missing data.event_type"), ("call_control_id", "missing data.payload.call_control_id")],
)
def test_over_long_ids_are_refused(field, message):
    body = load_fixture("call_answered")
    target = body["data"] if field == "event_type" else body["data"]["payload"]
    target[field] = "x" * (MAX_ID_CHARS + 1)
    with pytest.raises(BadEvent, match=message):
        parse_event(encode(body))


@pytest.mark.parametrize("event_type", sorted(RESERVED_EVENT_TYPES) + [LegEvent.PREFIX + "call.hangup"])
def test_the_service_s_own_event_names_are_refused_from_a_webhook(event_type):
    with pytest.raises(BadEvent, match="reserved for the service's own events"):
        parse_event(body_with(event_type))


@pytest.mark.parametrize(
    "raw",
    [
        body_with(digit=None).replace(b'"digit":null', b'"digit":NaN'),
        body_with(digit=None).replace(b'"digit":null', b'"digit":Infinity'),
        body_with(digit=None).replace(b'"digit":null', b'"digit":-Infinity'),
        body_with().replace(b'"digit":"0"', b'"digit":"\\ud800"'),
        body_with().replace(b'"digit":"0"', b'"digit":"\\udc00x"'),
        body_with().replace(b'"digit":"0"', b'"digit":"\xff"'),
    ],
    ids=["NaN", "Infinity", "-Infinity", "lone high surrogate", "lone low surrogate", "not UTF-8"],
)
def test_only_strict_json_in_utf_8_is_accepted(raw):
    with pytest.raises(BadEvent, match="not valid JSON"):
        parse_event(raw)


# ---------------------------------------------------------------- client_state


def test_client_state_round_trips():
    assert encode_client_state("xfer:v3:é") == base64.b64encode("xfer:v3:é".encode()).decode()
    assert event_with(client_state=encode_client_state("xfer:v3:é")).client_state == "xfer:v3:é"


@pytest.mark.parametrize(
    "client_state",
    [None, "", 7, ["eGZlcjo="], "not base64!", encode_client_state("hello")[:-1],
     base64.b64encode(b"\xff\xfe").decode()],
    ids=["null", "empty", "number", "list", "not base64", "missing padding", "not UTF-8"],
)
def test_unusable_client_state_is_none(client_state):
    assert event_with(client_state=client_state).client_state is None


def test_absent_client_state_is_none():
    body = load_fixture("call_answered")
    del body["data"]["payload"]["client_state"]
    assert parse_event(encode(body)).client_state is None


def test_a_transfer_leg_names_the_call_it_came_from():
    leg = parse_event(encode(load_fixture("transfer_leg_answered")))
    origin = load_fixture("call_initiated")["data"]["payload"]["call_control_id"]
    assert leg.client_state == TRANSFER_TAG + origin and leg.transferred_from == origin
    assert transfer_client_state(origin) == load_fixture("transfer_leg_answered")["data"]["payload"]["client_state"]


@pytest.mark.parametrize(
    "client_state",
    [None, encode_client_state("hello"), encode_client_state(TRANSFER_TAG), transfer_client_state(CALL)],
    ids=["none", "not a transfer tag", "tag without a call", "tag naming the leg itself"],
)
def test_no_transferred_from_without_another_call_in_the_tag(client_state):
    assert event_with(call_control_id=CALL, client_state=client_state).transferred_from is None


@pytest.mark.parametrize("tag", [1, 7, 123456789])
def test_a_speech_tag_round_trips(tag):
    event = event_with(client_state=speech_client_state(tag))
    assert event.client_state == f"{SPEECH_TAG}{tag}" and event.speech_tag == tag
    assert event.transferred_from is None


@pytest.mark.parametrize(
    "client_state",
    [None, encode_client_state("speak:"), encode_client_state("speak:-1"), encode_client_state("speak:1.5"),
     encode_client_state("speak: 1"), encode_client_state("speak:\u0661"), encode_client_state("speak:" + "9" * 10),
     encode_client_state("Speak:1"), transfer_client_state(CALL), encode_client_state("1")],
    ids=["none", "no number", "negative", "not an integer", "space", "arabic-indic digit", "too long",
         "another prefix", "transfer tag", "bare number"],
)
def test_anything_else_is_no_speech_tag(client_state):
    assert event_with(client_state=client_state).speech_tag is None


# ---------------------------------------------------------------- the service's own events


def test_a_leg_event_is_named_after_the_webhook_it_wraps():
    webhook = parse_event(encode(load_fixture("transfer_leg_answered")))
    leg = LegEvent(webhook)
    assert leg.event_type == "leg.call.answered" == LegEvent.PREFIX + webhook.event_type
    assert leg.event_id == webhook.event_id


def test_internal_event_names_are_unique_and_never_telnyx_s():
    names = [kind.event_type for kind in INTERNAL_EVENTS]
    telnyx_types = {load_fixture(name)["data"]["event_type"] for name in fixture_names()}
    assert len(names) == len(set(names)) == len(RESERVED_EVENT_TYPES)
    assert RESERVED_EVENT_TYPES.isdisjoint(telnyx_types)
    assert not any(name.startswith(LegEvent.PREFIX) for name in names)
