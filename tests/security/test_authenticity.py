"""SECURITY: only fresh webhooks signed by Telnyx's key drive a call; the service will not start without that key.

Every refused webhook must get 401 with the JSON error body, send no Call Control command and leave no
call state behind. Each attack class reports attempted vs handled (tests/figures.py).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import app as app_module
from background import settle
from config import ConfigError
from figures import record
from fixtures import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    encode,
    fixture_names,
    load_fixture,
    new_keypair,
    sign,
    with_ids,
)
from webhook_auth import WebhookVerifier
from webhooks import WEBHOOK, event, new_call_id

ROOT = Path(__file__).resolve().parents[2]
UNAUTHORISED = {"error": "invalid signature", "status": 401}


def post_raw(client, raw: bytes, headers):
    return client.post(WEBHOOK, data=raw, headers=headers, content_type="application/json")


def initiated(call_control_id: str) -> bytes:
    """A call.initiated body that would be answered if it were accepted ('A' in it for the escape case)."""
    return encode(event("call_initiated", call_control_id))


def refused_cleanly(app, telnyx, responses, call_ids) -> int:
    """How many responses were a proper 401; asserts nothing at all happened because of them."""
    settle(app)
    receptionist = app.extensions["receptionist"]
    assert telnyx.commands == [], [c.action for c in telnyx.commands]
    assert len(receptionist.calls) == 0
    assert all(receptionist.calls.get(cid) is None and not receptionist.calls.has_ended(cid) for cid in call_ids)
    return sum(r.status_code == 401 and r.json == UNAUTHORISED for r in responses)


# ---------------------------------------------------------------- what must be accepted


def test_validly_signed_webhooks_are_all_accepted(app, client, keypair, telnyx):
    calls = [new_call_id() for _ in range(20)]
    bodies = [encode(event("call_initiated", cid)) for cid in calls]
    bodies += [encode(with_ids(load_fixture(name))) for name in fixture_names()]
    now = str(int(time.time()))
    responses = [post_raw(client, raw, sign(raw, keypair[0], now)) for raw in bodies]
    accepted = sum(r.status_code == 200 and r.json == {"status": "accepted"} for r in responses)
    settle(app)
    answered = {c.call_control_id for c in telnyx.commands if c.action == "answer"}
    assert accepted == len(bodies)
    assert set(calls) <= answered
    record("validly signed webhooks", len(bodies), accepted, "every fixture plus 20 new calls")


# ---------------------------------------------------------------- what must be refused


def tampered_bodies(raw: bytes) -> dict[str, bytes]:
    """Same meaning or nearly, different bytes: each must break the signature."""
    parsed = json.loads(raw)
    variants = {f"byte {i} flipped": raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :] for i in range(0, len(raw), 97)}
    variants["last byte flipped"] = raw[:-1] + bytes([raw[-1] ^ 0x20])
    variants["re-serialised with spaces"] = json.dumps(parsed).encode()
    variants["re-serialised indented"] = json.dumps(parsed, indent=2).encode()
    variants["keys sorted"] = json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    variants["keys reversed"] = encode(_reversed_keys(parsed))
    variants["\\u0041 for A"] = raw.replace(b"A", b"\\u0041", 1)
    variants["non-ASCII escaped"] = json.dumps(parsed, ensure_ascii=True, separators=(",", ":")).encode() + b" "
    variants["trailing newline"] = raw + b"\n"
    variants["leading BOM"] = b"\xef\xbb\xbf" + raw
    variants["truncated"] = raw[:-1]
    variants["event type swapped"] = raw.replace(b"call.initiated", b"call.hangup")
    variants["direction swapped"] = raw.replace(b"incoming", b"outgoing")
    variants["caller changed"] = raw.replace(b"+13125550111", b"+19005550199")
    return variants


def _reversed_keys(node):
    if isinstance(node, dict):
        return {key: _reversed_keys(node[key]) for key in reversed(list(node))}
    return [_reversed_keys(item) for item in node] if isinstance(node, list) else node


def test_tampered_bodies_are_refused(app, client, keypair, telnyx):
    cid = new_call_id() + "A"
    raw = initiated(cid)
    headers = sign(raw, keypair[0], str(int(time.time())))
    variants = tampered_bodies(raw)
    assert len(set(variants.values())) == len(variants) and raw not in variants.values()
    responses = [post_raw(client, body, headers) for body in variants.values()]
    handled = refused_cleanly(app, telnyx, responses, [cid])
    assert handled == len(variants), [name for name, r in zip(variants, responses, strict=True) if r.status_code != 401]
    record("tampered body (flipped bytes, re-serialised, reordered, escaped)", len(variants), handled)


def test_signatures_from_other_keys_or_other_messages_are_refused(app, client, keypair, telnyx):
    cids = [new_call_id() for _ in range(10)]
    now = str(int(time.time()))
    attempts = [(initiated(cid), sign(initiated(cid), new_keypair()[0], now)) for cid in cids[:6]]
    other = initiated(cids[6])
    attempts.append((initiated(cids[7]), sign(other, keypair[0], now)))  # a genuine signature, another body
    good = sign(initiated(cids[8]), keypair[0], now)
    attempts.append((initiated(cids[8]), {**good, TIMESTAMP_HEADER: str(int(now) + 1)}))  # re-stamped replay
    body = initiated(cids[9])
    attempts.append((body, sign(f"{now}|".encode() + body, keypair[0], now)))  # signed the wrong message shape
    responses = [post_raw(client, raw, headers) for raw, headers in attempts]
    handled = refused_cleanly(app, telnyx, responses, cids)
    assert handled == len(attempts), [r.status_code for r in responses]
    record("signature from another key, body or timestamp", len(attempts), handled)


@pytest.fixture
def frozen_clock(monkeypatch):
    """Pin the verifier's clock, so window edges are exact however slowly the test runs."""
    now = 1_800_000_000

    def verifier(key, tolerance_s=300):
        return WebhookVerifier(key, tolerance_s, clock=lambda: now)

    monkeypatch.setattr(app_module, "WebhookVerifier", verifier)
    return now


@pytest.fixture
def frozen_app(make_app, raw_config, telnyx, scripted_brain, frozen_clock):
    return make_app(raw_config, telnyx=telnyx, brain=scripted_brain)


def test_timestamp_window_edges(frozen_app, frozen_clock, keypair, telnyx):
    client = frozen_app.test_client()
    inside, outside = [-299, -300, 0, 299, 300], [-301, 301, -3600, 3600, -frozen_clock]
    inside_calls = {skew: new_call_id() for skew in inside}
    for skew, cid in inside_calls.items():
        raw = initiated(cid)
        assert post_raw(client, raw, sign(raw, keypair[0], frozen_clock + skew)).status_code == 200, skew
    settle(frozen_app)
    answered = {c.call_control_id for c in telnyx.commands}
    assert answered == set(inside_calls.values())
    telnyx.commands.clear()
    outside_calls = [new_call_id() for _ in outside]
    responses = [
        post_raw(client, initiated(cid), sign(initiated(cid), keypair[0], frozen_clock + skew))
        for skew, cid in zip(outside, outside_calls, strict=True)
    ]
    settle(frozen_app)
    assert telnyx.commands == []
    handled = sum(r.status_code == 401 for r in responses)
    assert handled == len(outside)
    record("timestamp window (±299/300 in, ±301 and beyond out)", len(inside) + len(outside),
           len(answered & set(inside_calls.values())) + handled, "verifier clock pinned")


def garbled_headers(raw: bytes, private_key) -> dict[str, list[tuple[str, str]]]:
    """Every way the two headers can be missing, doubled or malformed; the body itself is genuine."""
    now = str(int(time.time()))
    good = sign(raw, private_key, now)
    sig, stamp = good[SIGNATURE_HEADER], good[TIMESTAMP_HEADER]
    decoded = base64.b64decode(sig)
    cases = {
        "no headers": [],
        "signature missing": [(TIMESTAMP_HEADER, stamp)],
        "timestamp missing": [(SIGNATURE_HEADER, sig)],
        "signature empty": [(SIGNATURE_HEADER, ""), (TIMESTAMP_HEADER, stamp)],
        "timestamp empty": [(SIGNATURE_HEADER, sig), (TIMESTAMP_HEADER, "")],
        "signature doubled": [(SIGNATURE_HEADER, sig), (SIGNATURE_HEADER, sig), (TIMESTAMP_HEADER, stamp)],
        "timestamp doubled": [(SIGNATURE_HEADER, sig), (TIMESTAMP_HEADER, stamp), (TIMESTAMP_HEADER, stamp)],
        "two different signatures": [(SIGNATURE_HEADER, "A" * 88), (SIGNATURE_HEADER, sig), (TIMESTAMP_HEADER, stamp)],
        "two different timestamps": [(SIGNATURE_HEADER, sig), (TIMESTAMP_HEADER, "1"), (TIMESTAMP_HEADER, stamp)],
        "signature not base64": [(SIGNATURE_HEADER, "!!" + sig[2:]), (TIMESTAMP_HEADER, stamp)],
        "signature url-safe alphabet": [(SIGNATURE_HEADER, base64.urlsafe_b64encode(b"\xfb\xff" * 32).decode()),
                                        (TIMESTAMP_HEADER, stamp)],
        "signature unpadded": [(SIGNATURE_HEADER, sig.rstrip("=")), (TIMESTAMP_HEADER, stamp)],
        "signature hex": [(SIGNATURE_HEADER, decoded.hex()), (TIMESTAMP_HEADER, stamp)],
        "signature 63 bytes": [(SIGNATURE_HEADER, base64.b64encode(decoded[:63]).decode()), (TIMESTAMP_HEADER, stamp)],
        "signature 65 bytes": [(SIGNATURE_HEADER, base64.b64encode(decoded + b"\0").decode()),
                               (TIMESTAMP_HEADER, stamp)],
        "signature all zero": [(SIGNATURE_HEADER, base64.b64encode(bytes(64)).decode()), (TIMESTAMP_HEADER, stamp)],
        "signature in the timestamp": [(SIGNATURE_HEADER, stamp), (TIMESTAMP_HEADER, sig)],
        "signature with inner space": [(SIGNATURE_HEADER, sig[:40] + " " + sig[40:]), (TIMESTAMP_HEADER, stamp)],
        "signature latin-1": [(SIGNATURE_HEADER, "é" + sig[1:]), (TIMESTAMP_HEADER, stamp)],
    }
    for label, value in {
        "words": "yesterday", "decimal": stamp + ".5", "negative": "-" + stamp, "plus sign": "+" + stamp,
        "exponent": "1.8e9", "hex": hex(int(stamp)), "arabic digits": "١٨٠٠٠٠٠٠٠٠", "superscript": "¹²³",
        "5000 digits": "9" * 5000, "13 digits": "1" + stamp + "00", "space inside": stamp[:5] + " " + stamp[5:],
        "zero": "0",
    }.items():
        cases[f"timestamp {label}"] = [(SIGNATURE_HEADER, sign(raw, private_key, value)[SIGNATURE_HEADER]),
                                       (TIMESTAMP_HEADER, value)]
    return cases


def test_missing_duplicated_and_garbled_headers_are_refused(app, client, keypair, telnyx, caplog):
    cid = new_call_id()
    raw = initiated(cid)
    cases = garbled_headers(raw, keypair[0])
    responses = {label: post_raw(client, raw, headers) for label, headers in cases.items()}
    handled = refused_cleanly(app, telnyx, responses.values(), [cid])
    assert handled == len(cases), {label: r.status_code for label, r in responses.items() if r.status_code != 401}
    assert not [r for r in caplog.records if r.exc_info], "a refusal raised instead of answering 401"
    record("missing / duplicated / garbled signature headers", len(cases), handled)


# ---------------------------------------------------------------- no key, no service

BAD_KEYS = {
    "missing": None,
    "empty": "",
    "blank": "   ",
    "not base64": "this is not a key!",
    "31 bytes": base64.b64encode(b"k" * 31).decode(),
    "33 bytes": base64.b64encode(b"k" * 33).decode(),
    "64 bytes (a private key pair)": base64.b64encode(b"k" * 64).decode(),
    "url-safe alphabet": base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(),
    "hex": (b"k" * 32).hex(),
    "PEM": new_keypair()[0].public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode(),
    "an API key by mistake": "KEY01234567890ABCDEF_sentinel",
}


@pytest.mark.parametrize("label", list(BAD_KEYS))
def test_create_app_refuses_a_missing_or_malformed_public_key(label, raw_config, telnyx, scripted_brain, monkeypatch):
    value = BAD_KEYS[label]
    if value is None:
        monkeypatch.delenv("TELNYX_PUBLIC_KEY", raising=False)
    else:
        monkeypatch.setenv("TELNYX_PUBLIC_KEY", value)
    with pytest.raises(ConfigError) as refused:
        app_module.create_app(raw_config, telnyx=telnyx, brain=scripted_brain)
    message = str(refused.value)
    assert "TELNYX_PUBLIC_KEY" in message
    assert not (value or "").strip() or value.strip() not in message, "the config error must not echo the key"
    refusals = {label: message}
    record("service started with a missing or malformed TELNYX_PUBLIC_KEY", len(refusals),
           sum("TELNYX_PUBLIC_KEY" in text for text in refusals.values()), label)


def gunicorn(env_key: str | None, tmp_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    config = yaml.safe_load((ROOT / "config.example.yml").read_text())
    config["call_log"]["path"] = str(tmp_path / "calls.jsonl")
    config_path = tmp_path / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "OPENAI_"))}
    env.update(RECEPTIONIST_CONFIG=str(config_path), TELNYX_BASE_URL="http://127.0.0.1:9/v2")
    if env_key is not None:
        env["TELNYX_PUBLIC_KEY"] = env_key
    command = [str(Path(sys.executable).parent / "gunicorn"), "app:create_app()", "--config", "gunicorn.conf.py",
               "--bind", "127.0.0.1:0"]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - started


@pytest.mark.parametrize("label", ["missing", "31 bytes"])
def test_gunicorn_exits_non_zero_without_a_usable_public_key(label, tmp_path):
    done, took = gunicorn(BAD_KEYS[label], tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "TELNYX_PUBLIC_KEY" in output
    assert took < 30
    exits = {label: done.returncode}
    record("gunicorn started without a usable TELNYX_PUBLIC_KEY", len(exits), sum(code != 0 for code in exits.values()),
           f"{label}: exit {done.returncode} in {took:.1f} s")
