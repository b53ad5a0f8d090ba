"""SECURITY: secrets and callers' personal data stay out of the logs, the HTTP responses and the call log.

Whole calls run through the real app with the real TelnyxClient (against the simulator's Call Control API)
and, for the LLM brain, the real openai SDK (against tests/fake_openai.FakeOpenAI). Every secret is a
sentinel made for this run. Every record any thread logs is kept, with logging at DEBUG and at INFO, and
searched, as are every response body and the call log. Failure paths are part of the run: Telnyx refusing
the key (401) or failing (500), the model failing (500) or refusing its key and quoting it back (401, as
OpenAI does), webhooks with bad signatures, bodies and paths.

Callers say phone numbers (written and spelled out), an email address and a card number; the model repeats
them back, puts them in broken output, and they end up in a message. With `call_log.redact_transcripts` on,
none of it may appear unmasked in the log (INFO and above) or the call log, and caller numbers are masked.
"""

from __future__ import annotations

import base64
import copy
import logging
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from app import create_app
from background import settle, strict_json_lines, watching_logs
from brains.intent import IntentBrain
from call_log import mask_number, redact_text
from config import build_settings
from events import encode_client_state
from fake_openai import FakeOpenAI, Status
from figures import record
from fixtures import SIGNATURE_HEADER, encode, load_fixture, new_keypair, sign, with_ids
from simulator.fake_telnyx import FakeTelnyx
from simulator.faults import http_error
from store_setup import without_operator_state
from webhooks import WEBHOOK, event, new_call_id

CALLER = "+14155550123"
BUSINESS = "+16505550144"
LINE = logging.Formatter("%(levelname)s %(name)s %(message)s")  # also appends any traceback

# What callers say, each with an intent phrase so the offline brain answers too (and the turn is logged).
SAID = {
    "phone, +1 555 867 5309": "what are your hours, you can reach me on +1 555 867 5309",
    "phone, (555) 867-5309": "where are you located, call me back at (555) 867-5309",
    "phone, spelled out": "when are you open, my cell is five five five eight six seven five three zero nine",
    "email": "what is your address, my email is jenny.tutone@example.com",
    "card, 4111 1111 1111 1111": "are you open on saturday, my card is 4111 1111 1111 1111",
}
BILLING = "I have a question about my bill for card 4111-1111-1111-1111"
MESSAGE = "please call me back on 555-867-5309 or write to jenny.tutone@example.com"


def _digits(number: str) -> re.Pattern:
    """A number written with up to three separators between digits (letters and '*' do not count)."""
    return re.compile(r"[^\w*]{0,3}".join(re.escape(d) for d in re.sub(r"\D", "", number)))


# Personal data, as it must never appear: each pattern finds any written form of it.
PERSONAL = {
    "phone number": _digits("8675309"),
    "phone number spelled out": re.compile(r"eight\W+six\W+seven\W+five\W+three\W+(zero|oh)\W+nine", re.I),
    "email": re.compile(r"tutone\W*@|jenny\.tutone", re.I),
    "card number": _digits("4111111111111111"),
    "caller's number": _digits(CALLER[2:]),
    "called number": _digits(BUSINESS[2:]),
}


@dataclass(frozen=True)
class Sentinels:
    """Every secret the service holds, made for this run, and the forms it could leak in."""

    telnyx_api_key: str
    openai_api_key: str
    public_key: str
    private_key_forms: tuple[str, ...]

    @classmethod
    def make(cls) -> tuple[Sentinels, Ed25519PrivateKey]:
        private_key, public_key = new_keypair()
        raw = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
        forms = (base64.b64encode(raw).decode(), raw.hex(), pem.splitlines()[1])
        telnyx_key = "KEY" + secrets.token_hex(16).upper() + "_SENTINEL"
        return cls(telnyx_key, "sk-proj-SENTINEL" + secrets.token_hex(24), public_key, forms), private_key

    def api_keys(self) -> dict[str, str]:
        forms = {f"signing private key ({i})": form for i, form in enumerate(self.private_key_forms)}
        return {"TELNYX_API_KEY": self.telnyx_api_key, "OPENAI_API_KEY": self.openai_api_key, **forms}


# ---------------------------------------------------------------- playing Telnyx's side of the calls


class Phone:
    """Telnyx's side of calls: signs each webhook with the sentinel key, keeps each response and signature."""

    def __init__(self, app, api: FakeTelnyx, private_key):
        self.app, self.api, self.key = app, api, private_key
        self.client = app.test_client()
        self.responses: list = []
        self.signatures: list[str] = []
        self.heard: Counter = Counter()

    def post(self, raw: bytes, *, key=None, content_type: str = "application/json", **headers: str):
        signed = sign(raw, key or self.key, int(time.time()))
        self.signatures.append(signed[SIGNATURE_HEADER])
        response = self.client.post(WEBHOOK, data=raw, headers={**signed, **headers}, content_type=content_type)
        self.responses.append(response)
        return response

    def deliver(self, body: dict) -> None:
        assert self.post(encode(body)).status_code == 200
        self.hear_out(body["data"]["payload"]["call_control_id"])

    def hear_out(self, cid: str) -> None:
        """Wait for the service, then report the end of each speech it played, until it stops speaking."""
        while True:
            settle(self.app)
            played = sum(r.status == 200 for r in self.api.requests_for(cid, action="speak"))
            if played == self.heard[cid]:
                return
            for _ in range(played - self.heard[cid]):
                assert self.post(encode(event("call_speak_ended", cid))).status_code == 200
            self.heard[cid] = played

    def ring(self) -> str:
        cid, numbers = new_call_id(), {"from": CALLER, "to": BUSINESS}
        self.deliver(event("call_initiated", cid, caller_id_name=CALLER, **numbers))
        self.deliver(event("call_answered", cid, **numbers))
        return cid

    def say(self, cid: str, text: str) -> None:
        self.deliver(event("call_transcription", cid, transcription_data={
            "transcript": text, "confidence": 0.93, "is_final": True}))

    def transfer_leg(self, cid: str, fixture: str) -> None:
        """The transfer leg's webhook (answered, or hung up unanswered), tagged the way the service tags it."""
        tag = encode_client_state("xfer:" + cid)
        leg = with_ids(load_fixture(fixture), call_control_id=new_call_id(), client_state=tag)
        leg["data"]["payload"].update({"from": BUSINESS, "to": CALLER})
        self.deliver(leg)
        self.hear_out(cid)

    def hang_up(self, cid: str) -> None:
        self.deliver(event("call_hangup", cid, **{"from": CALLER, "to": BUSINESS}))


# ---------------------------------------------------------------- the calls


def reply(text: str, action: str = "continue", department: str | None = None) -> dict:
    return {"reply": text, "action": action, "department": department, "confidence": 0.95}


def chatty_call(phone: Phone, model: FakeOpenAI | None) -> None:
    """Every kind of personal data, each repeated back by the model, then goodbye."""
    cid = phone.ring()
    for words in SAID.values():
        if model:
            model.enqueue(reply(f"Noted: {words.split(', ', 1)[1]}. We open at 8 am."))
        phone.say(cid, words)
    if model:
        model.enqueue(reply("You're welcome, goodbye.", "end"))
    phone.say(cid, "that's all thanks")
    phone.hang_up(cid)


def message_call(phone: Phone, model: FakeOpenAI | None) -> None:
    """Transfer to billing fails with 500s; the caller leaves a message full of personal data."""
    phone.api.plan("transfer", *[http_error(500, "90000")] * 3)
    cid = phone.ring()
    if model:
        model.enqueue(reply("Connecting you to billing about card 4111-1111-1111-1111.", "transfer", "billing"))
    phone.say(cid, BILLING)
    phone.say(cid, MESSAGE)
    phone.hang_up(cid)


def refused_key_call(phone: Phone, model: FakeOpenAI | None) -> None:
    """Telnyx refuses the API key for everything the call needs."""
    for action in ("answer", "speak", "transcription_start"):
        phone.api.plan(action, *[http_error(401, "10009")] * 3)
    cid = phone.ring()
    if model:
        model.enqueue(reply("Sure, I have +1 555 867 5309."))
    phone.say(cid, SAID["phone, +1 555 867 5309"])
    phone.hang_up(cid)
    phone.api.clear_faults()


def failing_model_calls(phone: Phone, model: FakeOpenAI, key: str) -> None:
    """The model fails (500 twice), refuses the key quoting it back, answers out of shape quoting the caller."""
    failures = [
        (500, 500),
        (Status(401, f"Incorrect API key provided: {key}. You can find your API key at platform.example."),),
        ("Sure, I'll call 555 867 5309 back later.",),
        (reply("ok", "text 4111 1111 1111 1111 now"),),
    ]
    for n, behaviours in enumerate(failures):
        cid = phone.ring()
        model.enqueue(*behaviours)
        phone.say(cid, SAID["phone, +1 555 867 5309"])
        phone.transfer_leg(cid, "transfer_leg_answered" if n % 2 else "transfer_leg_hangup_no_answer")
        if n % 2 == 0:
            phone.say(cid, MESSAGE)
        phone.hang_up(cid)


def refused_requests(phone: Phone) -> None:
    """Requests the service must refuse: each response body is kept and searched too."""
    body = encode(event("call_initiated", new_call_id()))
    assert phone.post(body, key=new_keypair()[0]).status_code == 401
    signed = sign(body, phone.key, int(time.time()))
    phone.signatures.append(signed[SIGNATURE_HEADER])
    phone.responses.append(phone.client.post(WEBHOOK, data=body[:-2] + b" }", headers=signed,
                                             content_type="application/json"))
    phone.responses.append(phone.client.post(WEBHOOK, data=body, content_type="application/json"))
    assert phone.post(b"{not json").status_code == 400
    assert phone.post(b'{"data": {"payload": {}}}').status_code == 400
    assert phone.post(body, content_type="text/plain").status_code == 415
    assert phone.post(b"{" + b" " * 70_000 + b"}").status_code == 413
    for path in ("/healthz", "/nope", WEBHOOK):
        phone.responses.append(phone.client.get(path))


# ---------------------------------------------------------------- one run per brain and log level


@dataclass
class Run:
    brain: str
    level: str
    sentinels: Sentinels
    records: list[logging.LogRecord]
    phone: Phone
    api: FakeTelnyx
    model_headers: list[dict]
    call_log: str
    calls: int

    def lines(self, min_level: int = logging.INFO) -> list[str]:
        return [LINE.format(r) for r in self.records if r.levelno >= min_level]

    def bodies(self) -> list[str]:
        return [r.get_data(as_text=True) + "\n" + str(r.headers) for r in self.phone.responses]


def settings_for(example_config: dict, tmp: Path, level: str, env: dict, redact: bool = True):
    raw = copy.deepcopy(example_config)
    raw["call_log"].update(path=str(tmp / "calls.jsonl"), redact_transcripts=redact)
    raw["logging"]["level"] = level
    raw["telnyx"]["max_backoff_s"] = 0
    raw["ai"]["timeout_s"] = 3
    raw["dialog"]["silence_timeout_s"] = 120
    return build_settings(without_operator_state(raw), env)


@pytest.fixture(scope="module", params=["intent-INFO", "intent-DEBUG", "llm-INFO", "llm-DEBUG"])
def run(request, example_config, tmp_path_factory):
    """One whole run per brain and log level, shared by the checks below: module-scoped, so it starts its own
    fake API, fake model and app (the fake_model and make_app fixtures are per test)."""
    brain, level = request.param.split("-")
    sentinels, private_key = Sentinels.make()
    root_level = logging.getLogger().level
    with FakeTelnyx() as api, FakeOpenAI() as model, watching_logs() as logs:
        env = {"TELNYX_API_KEY": sentinels.telnyx_api_key, "TELNYX_PUBLIC_KEY": sentinels.public_key,
               "TELNYX_BASE_URL": api.base_url, "OPENAI_API_KEY": sentinels.openai_api_key,
               "OPENAI_BASE_URL": model.base_url}
        settings = settings_for(example_config, tmp_path_factory.mktemp(request.param), level, env)
        app = create_app(settings, brain=IntentBrain(settings) if brain == "intent" else None)
        phone = Phone(app, api, private_key)
        llm = model if brain == "llm" else None
        try:
            for script in (chatty_call, message_call, refused_key_call):
                script(phone, llm)
            if llm:
                failing_model_calls(phone, llm, sentinels.openai_api_key)
            refused_requests(phone)
            settle(app)
        finally:
            app.extensions["receptionist"].shutdown()
            logging.getLogger().setLevel(root_level)
        path = Path(settings.call_log.path)
        yield Run(brain, level, sentinels, list(logs.records), phone, api, model.headers, path.read_text(),
                  calls=7 if llm else 3)


def found(needles: dict[str, str | re.Pattern], texts: list[str]) -> dict[str, str]:
    """Which needles occur in any text, each with the first text it was found in (shortened)."""
    hits = {}
    for name, needle in needles.items():
        for text in texts:
            match = needle.search(text) if isinstance(needle, re.Pattern) else needle in text
            if match:
                hits[name] = text[:300]
                break
    return hits


def every_secret(run: Run) -> dict[str, str]:
    signatures = {f"webhook signature {i}": s for i, s in enumerate(run.phone.signatures)}
    return {**run.sentinels.api_keys(), "TELNYX_PUBLIC_KEY": run.sentinels.public_key, **signatures}


# ---------------------------------------------------------------- secrets


def test_the_run_used_the_sentinels(run):
    """Controls: the secrets really were in play, so finding none of them below means something."""
    assert run.api.records and {r.authorization for r in run.api.records} == {
        f"Bearer {run.sentinels.telnyx_api_key}"}
    if run.brain == "llm":
        assert len(run.model_headers) >= 4 + len(SAID)
        assert {h["authorization"] for h in run.model_headers} == {f"Bearer {run.sentinels.openai_api_key}"}
    assert len(strict_json_lines(run.call_log)) == run.calls
    assert len(run.phone.signatures) > 30
    debug = [r for r in run.records if r.levelno < logging.INFO]
    assert run.lines() and bool(debug) == (run.level == "DEBUG")


def test_no_secret_is_logged_at_info_or_above(run):
    secrets_ = every_secret(run)
    leaks = found(secrets_, run.lines(logging.INFO))
    assert leaks == {}
    record("secret in a log line at INFO or above", len(secrets_), len(secrets_) - len(leaks),
           f"{run.brain} brain, logging {run.level}: {len(run.lines())} lines, {run.calls} calls, 401/500 paths")


def test_no_api_or_private_key_is_logged_even_at_debug(run):
    keys = run.sentinels.api_keys()
    leaks = found(keys, run.lines(logging.NOTSET))
    assert leaks == {}
    record("API or signing key in a log line at any level", len(keys), len(keys) - len(leaks),
           f"{run.brain} brain, logging {run.level}: {len(run.records)} records")


def test_no_secret_in_any_http_response(run):
    secrets_ = every_secret(run)
    leaks = found(secrets_, run.bodies())
    assert leaks == {}
    assert {r.status_code for r in run.phone.responses} >= {200, 400, 401, 404, 405, 413, 415}
    record("secret in an HTTP response", len(secrets_), len(secrets_) - len(leaks),
           f"{len(run.phone.responses)} responses incl. 400/401/404/405/413/415")


def test_no_secret_in_the_call_log(run):
    secrets_ = every_secret(run)
    leaks = found(secrets_, [run.call_log])
    assert leaks == {}
    record("secret in the call log", len(secrets_), len(secrets_) - len(leaks), f"{run.brain} brain")


# ---------------------------------------------------------------- personal data


def test_personal_data_is_never_logged_unmasked(run):
    texts = run.lines(logging.INFO) + run.bodies()
    leaks = found(PERSONAL, texts)
    assert leaks == {}
    record("caller's personal data in a log line (INFO+) or response", len(PERSONAL), len(PERSONAL) - len(leaks),
           f"{run.brain} brain, logging {run.level}")


def test_personal_data_is_masked_in_the_call_log(run):
    entries = strict_json_lines(run.call_log)
    leaks = found(PERSONAL, [run.call_log])
    assert leaks == {}
    assert {e["caller"] for e in entries} == {mask_number(CALLER)}
    said = [t["transcript"] for e in entries for t in e["turns"]]
    assert said.count("what are your hours, you can reach me on [number]") >= 2
    assert "when are you open, my cell is [number]" in said
    assert "are you open on saturday, my card is [number]" in said
    assert "please call me back on [number] or write to [email]" in [m for e in entries for m in e["messages"]]
    if run.brain == "llm":
        replies = [t["reply"] for e in entries for t in e["turns"]]
        assert "Noted: my email is [email]. We open at 8 am." in replies
        reasons = {e["escalation_reason"] for e in entries}
        assert "brain failed: model reply is not JSON: \"Sure, I'll call [number] back later.\"" in reasons, reasons
    record("caller's personal data in the call log (redact_transcripts on)", len(PERSONAL),
           len(PERSONAL) - len(leaks), f"{run.brain} brain: transcripts, replies, reasons, messages")


def test_without_redaction_the_same_checks_find_the_data(make_app, example_config, tmp_path):
    """Control: with redact_transcripts off the call log holds what was said, and the detectors see it."""
    private_key, public_key = new_keypair()
    with FakeTelnyx() as api:
        env = {"TELNYX_PUBLIC_KEY": public_key, "TELNYX_API_KEY": "KEY_control", "TELNYX_BASE_URL": api.base_url}
        settings = settings_for(example_config, tmp_path, "INFO", env, redact=False)
        app = make_app(settings, brain=IntentBrain(settings))
        chatty_call(Phone(app, api, private_key), None)
        message_call(Phone(app, api, private_key), None)
    text = Path(settings.call_log.path).read_text()
    assert set(found(PERSONAL, [text])) == set(PERSONAL) - {"caller's number", "called number"}
    assert {e["caller"] for e in strict_json_lines(text)} == {mask_number(CALLER)}


@pytest.mark.parametrize("text", [
    "+1 555 867 5309", "(555) 867-5309", "1 (555) 867 - 5309", "555 - 867 - 5309", "555.867.5309",
    "555–867–5309", "+15558675309", "5 5 5, 8 6 7, 5 3 0 9", "five five five eight six seven five three zero nine",
    "Five five five. Eight six seven. Five three oh nine.", "555 eight six seven 5309",
    "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "jenny.tutone@example.com",
])
def test_redaction_masks_every_written_and_spoken_form(text):
    masked = redact_text(f"you can reach me on {text}, thanks")
    assert found(PERSONAL, [masked]) == {}, masked
    assert masked.startswith("you can reach me on ") and masked.endswith(", thanks")


@pytest.mark.parametrize("text", [
    "We're open Monday to Friday from 8 am to 5 pm, and Saturday from 9 am to 1 pm.",
    "We're at 1200 Harbor Street, Suite 4, in Springfield.", "We open at 8:00 and close at 17:00.",
    "one of our dentists can see you at two or three", "Someone will phone you back.",
])
def test_redaction_leaves_ordinary_sentences_alone(text):
    assert redact_text(text) == text


@pytest.mark.parametrize("text", ["a" * 50_000, "5" * 50_000 + "x", "x@" + "b" * 50_000, "one " * 12_000])
def test_redaction_of_a_huge_reply_takes_linear_time(text):
    """A model can answer with kilobytes of text; masking it at the end of the call must not stall a worker."""
    started = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - started < 1.0
