"""The webhook fixtures match Telnyx's OpenAPI spec, the spec checker really checks, signing is Telnyx's."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jsonschema import ValidationError

import spec
from fixtures import encode, fixture_names, load_fixture, new_keypair, sign, signed, with_ids
from spec import request_schema, validate_request, validate_webhook, webhook_schema

CALL_FIXTURES = [
    "call_initiated",
    "call_answered",
    "call_speak_started",
    "call_speak_ended",
    "call_transcription_interim",
    "call_transcription",
    "call_transcription_low_confidence",
    "call_dtmf_received",
    "call_playback_ended",
    "call_bridged",
    "call_hangup",
    "call_recording_saved",
]
TRANSFER_FIXTURES = [
    "transfer_leg_initiated",
    "transfer_leg_answered",
    "transfer_leg_bridged",
    "transfer_leg_hangup_no_answer",
    "transfer_leg_machine_detection_ended",
]
LEG_FIELDS = ("call_control_id", "call_leg_id", "call_session_id", "connection_id")
SPEAK = {
    "payload": "We open at nine.",
    "voice": "Telnyx.KokoroTTS.af",
    "command_id": "c0ffee00-0000-4000-8000-000000000001",
}


def payload(name: str) -> dict:
    """The payload of a fixture."""
    return load_fixture(name)["data"]["payload"]


def test_fixture_set_is_complete():
    assert fixture_names() == sorted(CALL_FIXTURES + TRANSFER_FIXTURES)


@pytest.mark.parametrize("name", CALL_FIXTURES + TRANSFER_FIXTURES)
def test_fixture_matches_spec(name):
    validate_webhook(load_fixture(name))


def test_call_fixtures_are_one_leg():
    legs = {tuple(payload(name)[field] for field in LEG_FIELDS) for name in CALL_FIXTURES}
    assert len(legs) == 1
    assert next(iter(legs))[0].startswith("v3:")


def test_transfer_leg_is_a_new_leg_in_the_same_session():
    a_leg, b_leg = payload("call_initiated"), payload("transfer_leg_initiated")
    assert b_leg["call_control_id"] != a_leg["call_control_id"]
    assert b_leg["call_leg_id"] != a_leg["call_leg_id"]
    assert b_leg["call_session_id"] == a_leg["call_session_id"]
    assert {payload(name)["call_control_id"] for name in TRANSFER_FIXTURES} == {b_leg["call_control_id"]}


def test_event_ids_are_unique():
    ids = [load_fixture(name)["data"]["id"] for name in CALL_FIXTURES + TRANSFER_FIXTURES]
    assert len(set(ids)) == len(ids)


def test_client_state_is_null_or_base64():
    states = [payload(name)["client_state"] for name in CALL_FIXTURES + TRANSFER_FIXTURES]
    assert None in states
    decoded = [base64.b64decode(state, validate=True).decode() for state in states if state is not None]
    assert decoded and all(text == "xfer:" + payload("call_initiated")["call_control_id"] for text in decoded)


def test_load_fixture_returns_a_fresh_copy():
    load_fixture("call_hangup")["data"]["payload"]["hangup_cause"] = "changed"
    assert payload("call_hangup.json")["hangup_cause"] == "normal_clearing"


def test_with_ids_makes_a_valid_variant():
    original = load_fixture("call_answered")
    variant = with_ids(original, call_control_id="v3:another", client_state=None)
    assert variant["data"]["id"] != original["data"]["id"]
    assert variant["data"]["payload"]["call_control_id"] == "v3:another"
    assert original["data"]["payload"]["call_control_id"] != "v3:another"
    validate_webhook(variant)


# ---------------------------------------------------------------- the checker is not a no-op


def broken(name: str, change) -> dict:
    """A fixture with one change applied to its payload."""
    body = load_fixture(name)
    change(body["data"]["payload"])
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (broken("call_answered", lambda p: p.pop("call_control_id")), "call_control_id"),
        (broken("call_hangup", lambda p: p.update(hangup_cause="hung_up")), "hangup_cause"),
        (broken("call_transcription", lambda p: p["transcription_data"].update(is_final="yes")), "is_final"),
        (broken("call_speak_ended", lambda p: p.update(client_state=7)), "client_state"),
        (with_ids(load_fixture("call_answered"), event_id="not-a-uuid"), "id"),
    ],
)
def test_bad_webhook_is_rejected(body, field):
    with pytest.raises(ValidationError) as caught:
        validate_webhook(body)
    assert field in caught.value.path or field in caught.value.message


def test_unknown_event_type_is_rejected():
    body = load_fixture("call_answered")
    body["data"]["event_type"] = "call.teleported"
    with pytest.raises(ValidationError, match="call.teleported"):
        validate_webhook(body)


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("speak", {"payload": "Hello"}, "voice"),
        ("speak", {**SPEAK, "payload": 42}, "payload"),
        ("speak", {**SPEAK, "payload_type": "markdown"}, "payload_type"),
        ("transfer", {"timeout_secs": 20}, "to"),
        ("reject", {"cause": "NOT_TODAY"}, "cause"),
        ("transcription_start", {"transcription_engine": "Whisper"}, "transcription_engine"),
        # The spec's engine configs are a oneOf told apart only by their own `transcription_engine`.
        ("transcription_start", {"transcription_engine_config": {"language": "en"}}, "transcription_engine_config"),
    ],
)
def test_bad_request_is_rejected(action, body, field):
    with pytest.raises(ValidationError) as caught:
        validate_request(action, body)
    assert field in caught.value.path or field in caught.value.message


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("answer", {"command_id": "c0ffee00-0000-4000-8000-000000000002"}),
        ("speak", SPEAK),
        ("transcription_start", {"transcription_tracks": "inbound", "transcription_engine": "Google"}),
        (
            "transcription_start",
            {
                "transcription_engine": "Google",
                "transcription_engine_config": {"transcription_engine": "Google", "language": "en"},
            },
        ),
        ("transfer", {"to": "+13125550123", "timeout_secs": 20, "target_leg_client_state": "eGZlcjo="}),
        ("hangup", {}),
        ("playback_stop", {"stop": "all"}),
    ],
)
def test_good_request_passes(action, body):
    validate_request(action, body)


def test_request_schemas_come_from_the_spec_paths():
    for action, name in spec.FALLBACK_REQUEST_SCHEMAS.items():
        assert spec.schema_name_from_paths(action) == name


def test_accessors_return_resolved_schemas():
    speak = request_schema("speak")
    hangup_payload = webhook_schema("call.hangup")["properties"]["data"]["properties"]["payload"]
    assert {"payload", "voice"} <= set(speak["required"])
    assert "normal_clearing" in hangup_payload["properties"]["hangup_cause"]["enum"]
    assert "$ref" not in json.dumps(speak) + json.dumps(hangup_payload)


def test_nullable_becomes_a_type_union():
    schema = {"properties": {"state": {"type": "string", "enum": ["a"], "nullable": True}}}
    spec.nullable_to_type_union(schema)
    assert schema == {"properties": {"state": {"type": ["string", "null"], "enum": ["a", None]}}}


def test_missing_spec_fails_loudly(monkeypatch, tmp_path):
    monkeypatch.setenv("TELNYX_OPENAPI_SPEC", str(tmp_path / "nowhere.json"))
    with pytest.raises(FileNotFoundError, match="TELNYX_OPENAPI_SPEC"):
        validate_webhook(load_fixture("call_answered"))


# ---------------------------------------------------------------- signing


def verify(public_key_b64: str, headers: dict, raw_body: bytes) -> None:
    """Check headers the way Telnyx's receivers do; raise InvalidSignature on mismatch."""
    public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    message = headers["telnyx-timestamp"].encode() + b"|" + raw_body
    public_key.verify(base64.b64decode(headers["telnyx-signature-ed25519"]), message)


def test_signature_verifies_against_the_public_key():
    private_key, public_key = new_keypair()
    raw_body = encode(load_fixture("call_initiated"))
    verify(public_key, sign(raw_body, private_key, 1772463845), raw_body)


def test_signature_fails_after_one_byte_changes():
    private_key, public_key = new_keypair()
    raw_body, headers = signed(load_fixture("call_initiated"), private_key)
    tampered = bytearray(raw_body)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(InvalidSignature):
        verify(public_key, headers, bytes(tampered))


def test_signature_covers_the_timestamp():
    private_key, public_key = new_keypair()
    raw_body = encode(load_fixture("call_initiated"))
    headers = {**sign(raw_body, private_key, 1772463845), "telnyx-timestamp": "1772463846"}
    with pytest.raises(InvalidSignature):
        verify(public_key, headers, raw_body)
