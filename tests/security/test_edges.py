"""SECURITY: bad input at the edges of the webhook endpoint is refused with a 4xx or safely ignored, never a 5xx.

Oversize bodies (with a Content-Length and chunked without one), bodies that are not JSON, JSON nested
too deep, transcripts as large as the size limit allows, junk `client_state`, NaN and Infinity, lone
surrogates, odd confidences, null fields and odd event types. Every case is validly signed, so it reaches
the parser and the dialog, not only the signature check. What must hold: the answer is 2xx or 4xx with the
JSON error body, no exception reaches background work, nothing harmful is sent to Telnyx, and the call the
junk was aimed at still answers its caller afterwards. Each threat group reports attempted vs handled
(tests/figures.py).
"""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Any

import pytest

from background import background_failures, serve, settle, strict_json_lines
from dialog import HANDLERS
from events import RESERVED_EVENT_TYPES, BadEvent, encode_client_state, parse_event
from figures import record
from fixtures import encode, fixture_names, load_fixture, sign, with_ids
from webhooks import WEBHOOK, event, new_call_id, transcription

pytestmark = pytest.mark.both_stores

SCRIPTED_REPLY = "Happy to help with that."  # what the ScriptedBrain in conftest says by default


@pytest.fixture
def raw_config(raw_config):
    """Silence timers longer than any test here, so every command seen was caused by a webhook."""
    raw_config["dialog"]["silence_timeout_s"] = 120
    return raw_config


@pytest.fixture
def max_body(raw_config) -> int:
    return raw_config["webhook"]["max_body_bytes"]


class Line:
    """One live call, answered and listening, that junk is aimed at; it must still answer its caller after."""

    def __init__(self, app, post_webhook, telnyx):
        self.app, self.post, self.telnyx = app, post_webhook, telnyx
        self.cid = new_call_id()
        for name in ("call_initiated", "call_answered", "call_speak_ended"):
            assert self.post(event(name, self.cid)).status_code == 200
        settle(app)
        assert telnyx.actions(self.cid) == ["answer", "speak", "transcription_start"]

    def send(self, body: dict[str, Any] | bytes):
        """Post a body (dict or raw bytes) signed; wait until the call has processed it."""
        response = self.post(body)
        settle(self.app)
        return response

    def transferring(self) -> Line:
        """Caller pressed 0 and the announcement ended: the transfer is ringing."""
        self.send(event("call_dtmf_received", self.cid, digit="0"))
        self.send(event("call_speak_ended", self.cid))
        assert self.actions()[-1] == "transfer"
        return self

    def actions(self) -> list[str]:
        return self.telnyx.actions(self.cid)

    def still_answers(self) -> bool:
        """A plain question now gets the brain's reply spoken."""
        before = len(self.actions())
        self.send(transcription(self.cid, "what are your hours on saturday"))
        mine = [c for c in self.telnyx.commands if c.call_control_id == self.cid][before:]
        spoken = [c.body["payload"] for c in mine if c.action == "speak"]
        return SCRIPTED_REPLY in spoken[-1:]


@pytest.fixture
def line(app, post_webhook, telnyx) -> Line:
    return Line(app, post_webhook, telnyx)


def harmless(response, logs) -> bool:
    """2xx or 4xx, a JSON body, and nothing escaped into background work."""
    return 200 <= response.status_code < 500 and response.is_json and not background_failures(logs.records)


def splice(raw: bytes, key: str, value: str) -> bytes:
    """Insert `"key": value` (raw JSON text) at the top of data.payload."""
    return raw.replace(b'"payload":{', f'"payload":{{"{key}":{value},'.encode(), 1)


def transcription_bytes(cid: str, transcript: str = "hello", confidence: str = "0.93", extra: str = "") -> bytes:
    """A call.transcription body with raw JSON spliced in, for what json.dumps will not write (NaN, bad escapes)."""
    body = transcription(cid, "@TRANSCRIPT@", "@CONFIDENCE@")
    raw = encode(body).replace(b'"@CONFIDENCE@"', confidence.encode()).replace(b"@TRANSCRIPT@", transcript.encode())
    return splice(raw, "unread", extra) if extra else raw


# ---------------------------------------------------------------- size


def padded_transcript(cid: str, size: int, filler: str = "a") -> bytes:
    """A final transcription whose transcript fills the body to exactly `size` bytes."""
    base = len(encode(transcription(cid, "")))
    unit = len(json.dumps(filler)) - 2
    text = filler * ((size - base) // unit)
    text += "a" * (size - base - len(json.dumps(text)) + 2)
    raw = encode(transcription(cid, text))
    assert len(raw) == size
    return raw


def test_oversize_bodies_with_a_content_length_get_413_even_when_signed(app, line, max_body, logs):
    sizes = [max_body + 1, max_body + 4096, 2 * max_body, 1024 * 1024]
    before = line.actions()
    responses = [line.send(padded_transcript(line.cid, size)) for size in sizes]
    handled = sum(r.status_code == 413 and r.json["status"] == 413 for r in responses)
    held = handled == len(sizes) and line.actions() == before and harmless(responses[0], logs)
    assert held, [r.status_code for r in responses]
    assert line.still_answers()
    record("oversize body with Content-Length (signed)", len(sizes), handled,
           f"{max_body + 1} bytes to 1 MB, genuinely signed: only the size refuses them")


def chunked_post(base_url: str, raw: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST with Transfer-Encoding: chunked and no Content-Length, as a proxy or a hostile client may."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        chunks = (raw[i : i + 8192] for i in range(0, len(raw), 8192))
        connection.request("POST", WEBHOOK, body=chunks, encode_chunked=True,
                           headers={**headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_chunked_bodies_without_a_content_length_are_held_to_the_same_limit(app, line, keypair, max_body, logs):
    sizes = [max_body + 1, 2 * max_body, 1024 * 1024]
    before = line.actions()
    with serve(app) as url:
        at_limit = padded_transcript(line.cid, max_body)
        fits = chunked_post(url, at_limit, sign(at_limit, keypair[0], int(time.time())))
        results = []
        for size in sizes:
            raw = padded_transcript(line.cid, size)
            results.append(chunked_post(url, raw, sign(raw, keypair[0], int(time.time()))))
    settle(app)
    handled = sum(status == 413 and json.loads(body)["status"] == 413 for status, body in results)
    assert fits[0] == 200, fits
    assert handled == len(sizes), results
    assert line.actions()[len(before) :] == ["speak"], "the body at the limit is a turn, answered"
    assert not background_failures(logs.records)
    record("oversize chunked body, no Content-Length (signed)", len(results) + 1,
           handled + (fits[0] == 200), "one at exactly the limit must still be accepted")


# ---------------------------------------------------------------- not JSON


NOT_JSON = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml",
            "text/json", "application/jsonp"]


def test_a_signed_body_that_is_not_declared_json_gets_415(app, client, keypair, telnyx, logs):
    outcomes = {}
    for content_type in NOT_JSON:
        cid = new_call_id()
        raw = encode(event("call_initiated", cid))
        signed = client.post(WEBHOOK, data=raw, headers=sign(raw, keypair[0], int(time.time())),
                             content_type=content_type)
        unsigned = client.post(WEBHOOK, data=raw, content_type=content_type)
        settle(app)
        outcomes[content_type] = (signed.status_code, unsigned.status_code, telnyx.actions(cid))
    handled = sum(outcome == (415, 401, []) for outcome in outcomes.values())
    assert handled == len(NOT_JSON), outcomes
    assert not background_failures(logs.records)
    record("body not declared as JSON (signed, and unsigned)", len(outcomes), handled,
           "text/plain, form-encoded, multipart, XML, ...: 415 signed, 401 unsigned, nothing sent")


@pytest.mark.parametrize("content_type", [None, "application/json; charset=utf-8", "application/vnd.telnyx+json"])
def test_json_without_a_content_type_or_with_parameters_is_accepted(content_type, app, client, keypair, telnyx):
    cid = new_call_id()
    raw = encode(event("call_initiated", cid))
    response = client.post(WEBHOOK, data=raw, headers=sign(raw, keypair[0], int(time.time())),
                           content_type=content_type)
    settle(app)
    assert response.status_code == 200, response.json
    assert telnyx.actions(cid) == ["answer"]


def test_bodies_that_are_not_utf8_json_get_400(app, line, logs):
    hello = json.dumps(transcription(line.cid, "héllo"), ensure_ascii=False).encode()
    assert "é".encode() in hello
    bodies = {
        "UTF-16": encode(transcription(line.cid, "hello")).decode().encode("utf-16"),
        "Latin-1": hello.decode().encode("latin-1"),
        "byte-order mark": b"\xef\xbb\xbf" + hello,
        "overlong slash": hello.replace("é".encode(), b"\xc0\xaf"),
        "CESU-8 surrogate": hello.replace("é".encode(), b"\xed\xa0\x80"),
        "NUL after the JSON": hello + b"\x00",
        "two documents": hello + hello,
        "empty": b"",
    }
    responses = {name: line.send(raw) for name, raw in bodies.items()}
    refused = {name for name, r in responses.items() if r.status_code == 400 and r.json["status"] == 400}
    held = len(refused) == len(bodies) and line.actions()[3:] == [] and harmless(responses["empty"], logs)
    assert held, {name: r.status_code for name, r in responses.items()}
    assert line.still_answers()
    record("body not UTF-8 JSON (signed)", len(responses), len(refused), "UTF-16, Latin-1, BOM, ...")


# ---------------------------------------------------------------- nesting


def nested_in_envelope(cid: str, depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return splice(encode(transcription(cid, "what are your hours")), "unread", opener * depth + closer * depth)


def test_deeply_nested_json_is_refused_without_a_crash(app, line, max_body, logs):
    bodies = {
        "100k [ (over the size limit)": b"[" * 100_000,
        "60k [ unclosed": b"[" * 60_000,
        "30k [ closed": b"[" * 30_000 + b"]" * 30_000,
        "10k objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        "20k deep inside a real envelope": nested_in_envelope(line.cid, 20_000),
        "10k objects deep inside a real envelope": nested_in_envelope(line.cid, 10_000, '{"a":', "}"),
    }
    responses = {name: line.send(raw) for name, raw in bodies.items()}
    expected = {name: 413 if len(raw) > max_body else 400 for name, raw in bodies.items()}
    handled = sum(responses[name].status_code == status for name, status in expected.items())
    held = handled == len(bodies) and line.actions()[3:] == [] and harmless(responses["60k [ unclosed"], logs)
    assert held, {name: r.status_code for name, r in responses.items()}
    assert line.still_answers()
    record("deeply nested JSON (signed)", len(responses), handled, "10k to 100k levels")


def test_moderate_nesting_in_an_ignored_field_does_not_disturb_the_call(app, line, logs):
    response = line.send(nested_in_envelope(line.cid, 500))
    assert response.status_code == 200
    assert line.actions()[3:] == ["speak"]
    assert harmless(response, logs)
    turns = [(response.status_code, line.actions()[3:])]
    record("nesting 500 deep in an unread field (signed)", len(turns),
           sum(status == 200 and actions == ["speak"] for status, actions in turns), "accepted; the turn is answered")


# ---------------------------------------------------------------- huge strings

FILLERS = {
    "letters": "a", "digit runs": "1 ", "email-like": "a.a@", "multi-byte": "é", "emoji": "\U0001f600",
    "right-to-left override": "\u202e", "asks for a person": "operator ", "control characters": "\x01",
}


def test_a_transcript_as_large_as_the_limit_allows_is_answered_and_logged_bounded(
    app, post_webhook, telnyx, scripted_brain, max_body, raw_config, logs
):
    handled = 0
    for filler in FILLERS.values():
        cid = new_call_id()
        for fixture in ("call_initiated", "call_answered", "call_speak_ended"):
            post_webhook(event(fixture, cid))
        started = time.monotonic()
        response = post_webhook(padded_transcript(cid, max_body, filler))
        settle(app)
        took = time.monotonic() - started
        post_webhook(event("call_hangup", cid))
        settle(app)
        answered = telnyx.actions(cid)[3:4] == ["speak"]
        handled += response.status_code == 200 and answered and took < 5 and harmless(response, logs)
    logged = strict_json_lines(Path(raw_config["call_log"]["path"]).read_text(encoding="utf-8"))
    longest_prompt = max(len(utterance) for _, utterance in scripted_brain.history)
    assert handled == len(FILLERS)
    assert longest_prompt <= 2000
    assert len(logged) == len(FILLERS)
    assert all(len(turn["transcript"]) <= 2000 for line in logged for turn in line["turns"])
    record("transcript filling the whole body limit (signed)", len(logged), handled,
           f"{max_body} bytes; brain prompt and call log cut to {longest_prompt} characters")


def test_a_huge_caller_number_is_answered_and_masked(app, post_webhook, telnyx, raw_config, logs):
    cid = new_call_id()
    post_webhook(event("call_initiated", cid, **{"from": "+1" + "5" * 60_000}))
    post_webhook(event("call_hangup", cid))
    settle(app)
    logged = strict_json_lines(Path(raw_config["call_log"]["path"]).read_text(encoding="utf-8"))
    assert telnyx.actions(cid) == ["answer"]
    assert logged[0]["caller"].count("5") <= 2 and not background_failures(logs.records)
    record("60 kB caller number (signed)", len(logged), sum(line["caller"].count("5") <= 2 for line in logged),
           "answered; logged masked")


# ---------------------------------------------------------------- client_state

BAD_CLIENT_STATES = {
    "not base64": "!!! not base64 !!!",
    "base64 of non-UTF-8": "//79/A==",
    "missing padding": encode_client_state("hello")[:-1],
    "url-safe alphabet": "-_-_",
    "newline inside": "aGVs\nbG8=",
    "empty": "",
    "huge": encode_client_state("x" * 30_000),
    "a number": 12345,
    "a list": ["xfer:v3:x"],
    "an object": {"xfer": "v3:x"},
    "true": True,
    "transfer tag for no call": encode_client_state("xfer:v3:no-such-call"),
    "transfer tag, empty": encode_client_state("xfer:"),
    "transfer tag, 40 kB": encode_client_state("xfer:" + "v" * 40_000),
}


def call_with_client_state(post_webhook, cid: str, client_state: Any) -> list:
    responses = []
    for name in ("call_initiated", "call_answered", "call_speak_ended"):
        responses.append(post_webhook(with_ids(event(name, cid), client_state=client_state)))
    body = transcription(cid, "what are your hours on saturday")
    body["data"]["payload"]["client_state"] = client_state
    responses.append(post_webhook(body))
    return responses


def test_junk_client_state_changes_nothing_about_the_call(app, post_webhook, telnyx, logs):
    baseline = new_call_id()
    call_with_client_state(post_webhook, baseline, None)
    settle(app)
    expected = telnyx.actions(baseline)
    assert expected == ["answer", "speak", "transcription_start", "speak"]
    handled = 0
    for label, client_state in BAD_CLIENT_STATES.items():
        cid = new_call_id()
        responses = call_with_client_state(post_webhook, cid, client_state)
        settle(app)
        ok = all(r.status_code == 200 for r in responses) and telnyx.actions(cid) == expected
        handled += ok and not background_failures(logs.records)
        assert ok, (label, [r.status_code for r in responses], telnyx.actions(cid))
    assert handled == len(BAD_CLIENT_STATES)
    record("junk client_state on every event of a call (signed)", len(BAD_CLIENT_STATES), handled,
           "invalid base64, non-UTF-8, 40 kB, wrong types, stray transfer tags")


# ---------------------------------------------------------------- NaN, surrogates, numbers


def test_nan_infinity_and_lone_surrogates_get_400_and_the_call_carries_on(app, line, logs):
    cid = line.cid
    bodies = {
        "NaN confidence": transcription_bytes(cid, confidence="NaN"),
        "Infinity confidence": transcription_bytes(cid, confidence="Infinity"),
        "-Infinity confidence": transcription_bytes(cid, confidence="-Infinity"),
        "NaN in an unread field": transcription_bytes(cid, extra="NaN"),
        "lone high surrogate": transcription_bytes(cid, transcript="\\ud800 hello"),
        "lone low surrogate": transcription_bytes(cid, transcript="hello \\udfff"),
        "surrogates reversed": transcription_bytes(cid, transcript="\\ude00\\ud83d"),
        "lone surrogate in an unread field": transcription_bytes(cid, extra='"\\udbff"'),
        "lone surrogate in the event type": encode(event("call_dtmf_received", cid)).replace(
            b"call.dtmf.received", b"call.\\ud800"),
        "5000-digit integer": transcription_bytes(cid, confidence="1" + "0" * 5000),
    }
    responses = {name: line.send(raw) for name, raw in bodies.items()}
    refused = {name for name, r in responses.items() if r.status_code == 400 and "JSON" in r.json["error"]}
    held = len(refused) == len(bodies) and line.actions()[3:] == [] and not background_failures(logs.records)
    assert held, {name: r.status_code for name, r in responses.items() if name not in refused}
    paired = line.send(transcription_bytes(cid, transcript="\\ud83d\\ude00 what are your hours"))
    assert paired.status_code == 200, "a proper surrogate pair is valid JSON"
    assert line.still_answers()
    record("NaN, Infinity, lone surrogates, 5000-digit numbers (signed)", len(responses), len(refused),
           "400 before anything reaches the call")


CONFIDENCES = {  # raw JSON -> what the caller hears: the brain's answer, or the reprompt for low confidence
    "0.93": "brain", "0.5": "brain", "1": "brain", "1.0": "brain", "1E-0": "brain",
    "0.49999999999999994": "reprompt", "0": "reprompt", "-0.0": "reprompt", "5e-324": "reprompt",
    # out of range or not a number: unknown, so the turn is not held against the caller
    "1.0000000000000002": "brain", "-1e-300": "brain", "1e400": "brain", "-1e400": "brain",
    "1" + "0" * 400: "brain", "-1": "brain", "true": "brain", "false": "brain", '"0.1"': "brain",
    "null": "brain", "[]": "brain", "{}": "brain",
}


def test_odd_confidences_are_never_a_crash_and_never_certainty(app, post_webhook, telnyx, raw_config, logs):
    reprompt = raw_config["assistant"]["reprompt"]
    heard = {}
    for raw_confidence in CONFIDENCES:
        cid = new_call_id()
        for name in ("call_initiated", "call_answered", "call_speak_ended"):
            post_webhook(event(name, cid))
        response = post_webhook(transcription_bytes(cid, "what are your hours", raw_confidence))
        post_webhook(event("call_hangup", cid))
        settle(app)
        spoken = [c.body["payload"] for c in telnyx.commands if c.call_control_id == cid and c.action == "speak"]
        said = {SCRIPTED_REPLY: "brain", reprompt: "reprompt"}.get(spoken[-1], spoken[-1])
        heard[raw_confidence[:20]] = said if response.status_code == 200 else response.status_code
    logged = strict_json_lines(Path(raw_config["call_log"]["path"]).read_text(encoding="utf-8"))
    expected = {raw[:20]: outcome for raw, outcome in CONFIDENCES.items()}
    handled = sum(heard[raw] == outcome for raw, outcome in expected.items())
    assert heard == expected
    assert len(logged) == len(CONFIDENCES)
    assert all(t["asr_confidence"] is None or 0 <= t["asr_confidence"] <= 1 for line in logged for t in line["turns"])
    assert not background_failures(logs.records)
    record("numeric edge cases in ASR confidence (signed)", len(heard), handled,
           "1e400, huge ints, -0.0, denormals, wrong types; call log stays strict JSON")


# ---------------------------------------------------------------- null fields and event types


def aimed_at(name: str, line: Line) -> dict[str, Any]:
    """A fixture for the line's call; a transfer-leg fixture as the leg of the line's transfer."""
    if name.startswith("transfer_leg"):
        return with_ids(load_fixture(name), call_control_id=new_call_id(),
                        client_state=encode_client_state("xfer:" + line.cid))
    body = event(name, line.cid)
    if "digit" in body["data"]["payload"]:
        body["data"]["payload"]["digit"] = "5"  # not 0, so the baseline does not transfer
    return body


def effect(app, post_webhook, telnyx, name: str, null: str | None) -> tuple[Any, list[str], bool]:
    """The response, the commands and whether the call answers afterwards, for a fixture with one field nulled."""
    line = Line(app, post_webhook, telnyx)
    if name.startswith("transfer_leg"):
        line.transferring()
    before = len(line.actions())
    body = aimed_at(name, line)
    if null in body["data"]:
        body["data"][null] = None
    elif null is not None:
        body["data"]["payload"][null] = None
    response = line.send(body)
    return response, line.actions()[before:], line.still_answers()


def test_null_fields_never_make_a_call_worse_than_the_real_event(app, post_webhook, telnyx, logs):
    attempted = handled = 0
    for name in fixture_names():
        _, expected, answers = effect(app, post_webhook, telnyx, name, None)
        fixture = load_fixture(name)
        for field in [*fixture["data"]["payload"], *fixture["data"]]:
            response, actions, still = effect(app, post_webhook, telnyx, name, field)
            ok = harmless(response, logs) and set(actions) <= set(expected) and (still or not answers)
            attempted += 1
            handled += ok
            assert ok, (name, field, response.status_code, actions, expected, still, answers)
    record("fields set to null, one at a time (signed)", attempted, handled,
           "every field of every fixture; no command the real event would not cause; the call still answers")


ODD_EVENT_TYPES = [
    "", " ", "call.answered ", " call.answered", "CALL.ANSWERED", "call.answered\x00", "call.answered\u200b",
    "call.\u202edeweresna", "call.answered\n2026-01-01 INFO forged line", "call..answered", "call.*", "%s%s%s%n",
    "{event_type}", "__class__", "__init__", "HANDLERS", "constructor", "\U0001f4de", "x" * 512, "x" * 513,
]
INTERNAL = sorted(RESERVED_EVENT_TYPES) + ["leg.call.hangup", "leg.call.answered", "leg.call.bridged"]


def test_odd_event_types_are_ignored_or_refused(app, line, logs):
    responses = {}
    for event_type in ODD_EVENT_TYPES:
        body = event("call_dtmf_received", line.cid)
        body["data"]["event_type"] = event_type
        responses[event_type] = line.send(body)
    statuses = {name: r.status_code for name, r in responses.items()}
    handled = sum(status in (200, 400) for status in statuses.values())
    held = handled == len(ODD_EVENT_TYPES) and line.actions()[3:] == [] and harmless(responses[""], logs)
    assert held, statuses
    assert line.still_answers()
    record("odd event types (signed)", len(statuses), handled,
           "control characters, look-alikes, 512/513 chars; acknowledged and ignored, or 400")


def test_a_webhook_cannot_pose_as_an_internal_event(app, post_webhook, telnyx, logs):
    """Regression: brain.replied / brain.failed / timer.fired from a webhook crashed the call's worker, and
    call.expired ended the call. The dialog's table serves webhooks and internal events alike, so a webhook
    may not use those names."""
    outcomes = {}
    for event_type in INTERNAL:
        line = Line(app, post_webhook, telnyx)
        body = event("call_dtmf_received", line.cid)
        body["data"]["event_type"] = event_type
        response = line.send(body)
        failures = background_failures(logs.records)
        outcomes[event_type] = (response.status_code, response.json.get("error", ""), failures, line.still_answers())
    held = {name for name, (status, error, failures, answers) in outcomes.items()
            if status == 400 and "reserved" in error and not failures and answers}
    assert held == set(INTERNAL), {name: outcome for name, outcome in outcomes.items() if name not in held}
    record("webhook posing as an internal event (signed)", len(outcomes), len(held),
           "brain.*, timer.fired, call.expired, leg.*: 400, and the call still answers")


def test_every_handled_name_that_telnyx_does_not_send_is_refused_from_a_webhook():
    """Keeps events.RESERVED_EVENT_TYPES in step with the dialog's table as handlers are added."""
    telnyx_types = {load_fixture(name)["data"]["event_type"] for name in fixture_names()}
    for event_type in set(HANDLERS) - telnyx_types:
        body = event("call_dtmf_received", "v3:x")
        body["data"]["event_type"] = event_type
        with pytest.raises(BadEvent, match="reserved"):
            parse_event(encode(body))
