"""call_log.py: the record written for each finished call, masking numbers and personal data, the JSON-lines file."""

from __future__ import annotations

import json
import logging

import pytest

from call_log import CallLog, build_record, mask_number, redact_text
from calls import CallState, TurnRecord

STARTED, ENDED = 1_767_225_600.0, 1_767_225_660.0  # 2026-01-01 00:00:00 and 00:01:00 UTC
PHONE = "+1 312 555 0111"


def finished_call(**fields) -> CallState:
    """A call with one answered turn, one unanswered turn and a message, all quoting the caller's number."""
    state = CallState("v3:a", caller="+13125550111", started_at=STARTED, **fields)
    state.turns = [
        TurnRecord(f"my number is {PHONE}", 0.93, STARTED + 10, 0.8, "continue", f"I have {PHONE}.", STARTED + 10.25,
                   STARTED + 10.75, held_at=STARTED + 10.125, sentences=3, output_tokens=21, barged_in=True),
        TurnRecord("bye", None, STARTED + 20),
    ]
    state.messages = [f"call me back on {PHONE}"]
    return state


# ---------------------------------------------------------------- the record


def test_record_fields():
    record = build_record(finished_call(outcome="transferred", transfer_destination="billing"), ENDED)
    assert record["call_control_id"] == "v3:a" and record["caller"] == "+1********11"
    assert (record["started_at"], record["ended_at"]) == ("2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00")
    assert (record["outcome"], record["ai"], record["transferred_to"]) == ("transferred", True, "billing")
    assert record["turns"][0] == {
        "transcript": "my number is [number]", "asr_confidence": 0.93, "brain_confidence": 0.8,
        "action": "continue", "reply": "I have [number].", "response_ms": 250.0,
        "last_speak_ms": 750.0, "holding_ms": 125.0, "sentences": 3, "output_tokens": 21, "barged_in": True,
    }
    assert record["turns"][1]["reply"] is None and record["turns"][1]["response_ms"] is None


def test_transferred_to_only_when_the_transfer_happened():
    record = build_record(finished_call(outcome="message_taken", transfer_destination="front_desk"), ENDED)
    assert record["transferred_to"] is None


def test_unknown_times_are_null():
    record = build_record(CallState("v3:a"), 0.0)
    assert (record["started_at"], record["ended_at"], record["caller"]) == (None, None, "unknown")


def test_redaction_masks_transcripts_replies_messages_and_reasons():
    state = finished_call(escalation_reason=f"brain failed: model said {PHONE}")
    text = json.dumps(build_record(state, ENDED, redact=True))
    assert "555" not in text
    assert text.count("[number]") == 4


def test_without_redaction_the_words_are_kept_but_the_caller_is_still_masked():
    state = finished_call(escalation_reason=f"brain failed: model said {PHONE}")
    record = build_record(state, ENDED, redact=False)
    assert record["turns"][0]["transcript"] == f"my number is {PHONE}"
    assert record["messages"] == [f"call me back on {PHONE}"]
    assert record["escalation_reason"] == f"brain failed: model said {PHONE}"
    assert record["caller"] == "+1********11"


# ---------------------------------------------------------------- masking (the full table is in the security suite)


@pytest.mark.parametrize(
    "number, masked",
    [("+13125550111", "+1********11"), (" +13125550111 ", "+1********11"), ("12345", "12*45"), ("1234", "****"),
     ("", "unknown"), (None, "unknown")],
)
def test_mask_number(number, masked):
    assert mask_number(number) == masked


@pytest.mark.parametrize(
    "text, redacted",
    [
        ("call me on +1 312 555 0111 please", "call me on [number] please"),
        ("card 4111-1111-1111-1111 expires", "card [number] expires"),
        ("five five five, eight six seven, five three oh nine", "[number]"),
        ("mail jane.doe@example.com now", "mail [email] now"),
        ("Suite 4, 1200 Harbor Street", "Suite 4, 1200 Harbor Street"),
        ("open 8 to 5, one two three", "open 8 to 5, one two three"),
    ],
)
def test_redact_text(text, redacted):
    assert redact_text(text) == redacted


# ---------------------------------------------------------------- the file


def test_each_write_appends_one_json_line(tmp_path):
    path = tmp_path / "calls.jsonl"
    call_log = CallLog(str(path))
    call_log.write({"call_control_id": "v3:a", "messages": ["Grüße"]})
    call_log.write({"call_control_id": "v3:b"})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["call_control_id"] for line in lines] == ["v3:a", "v3:b"]
    assert "Grüße" in lines[0]


# Every character some reader takes as the end of a line: Python's str.splitlines, JavaScript, Unicode's list.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def test_every_record_stays_one_line_for_every_reader(tmp_path):
    path = tmp_path / "calls.jsonl"
    state = finished_call(escalation_reason=f"reason{LINE_BREAKS}end")
    state.turns[0].transcript = state.turns[0].reply = f"one{LINE_BREAKS}two"
    state.messages = [f"call{LINE_BREAKS}back", "\u2028", "\u2029\u2029", "\x85"]
    record = build_record(state, ENDED, redact=False)
    CallLog(str(path)).write(record)
    CallLog(str(path)).write({"call_control_id": "v3:b", "\u2028key": "\u2029"})
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    lines = text.splitlines()  # splits on all of LINE_BREAKS
    assert len(lines) == 2 and raw.count(b"\n") == 2 and text.endswith("\n")
    assert not any(char in text[:-1].replace("\n", "") for char in LINE_BREAKS)
    assert json.loads(lines[0]) == record
    assert json.loads(lines[1]) == {"call_control_id": "v3:b", "\u2028key": "\u2029"}
    assert "\\u2028" in lines[0] and "\\u2029" in lines[0] and "\\u0085" in lines[0]


def test_no_path_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    CallLog(None).write({"call_control_id": "v3:a"})
    CallLog("").write({"call_control_id": "v3:a"})
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_is_logged_not_raised(tmp_path, caplog):
    unwritable = CallLog(str(tmp_path))  # a directory cannot be opened for appending
    with caplog.at_level(logging.ERROR, logger="call_log"):
        unwritable.write({"call_control_id": "v3:a"})
    assert "call=v3:a could not write the call log" in caplog.text
    assert caplog.records[0].exc_info is not None
