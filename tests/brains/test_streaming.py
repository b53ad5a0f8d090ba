"""brains/streaming.py: the streamed LLM brain, the real openai client against the fake OpenAI server on loopback."""

from __future__ import annotations

import copy
import threading
import time

import pytest

from brains import BrainError, Decision, Finished, Sentence, StillWriting, streaming
from brains.llm import OUTPUT_FORMAT
from brains.streaming import TOOL_GUIDE, StreamingLLMBrain, _Reading, gathered, sse_data
from config import build_settings
from fake_openai import _TOKEN, HANG, Delay, Raw, Status, Stream, Tool

TIMEOUT_S, STALL_S = 1.0, 0.4
PACE = {"ttft_s": 0.05, "tokens_per_s": 100}


@pytest.fixture
def make_brain(fake_model, raw_config):
    made: list[StreamingLLMBrain] = []

    def make(**raw_changes) -> StreamingLLMBrain:
        raw = copy.deepcopy(raw_config)
        raw["webhook"]["verify_signatures"] = False
        raw["ai"].update({"stream": True, "timeout_s": TIMEOUT_S, "stall_timeout_s": STALL_S})
        for section, values in raw_changes.items():
            raw[section] = {**raw[section], **values} if isinstance(values, dict) else values
        made.append(StreamingLLMBrain(build_settings(raw, {"OPENAI_BASE_URL": fake_model.base_url})))
        return made[-1]

    yield make
    for brain in made:  # their kept-alive connections to the fake
        brain.close()


def parts(brain: StreamingLLMBrain, utterance: str = "are you open on saturday") -> list:
    return list(brain.stream([], utterance).parts())


def test_the_request_streams_with_tools_usage_and_a_token_bound(fake_model, make_brain):
    fake_model.enqueue(Stream("We open at nine.", **PACE))
    parts(make_brain())
    (body,) = fake_model.requests
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 400 and "response_format" not in body
    tools = {tool["function"]["name"]: tool["function"] for tool in body["tools"]}
    assert list(tools) == ["transfer", "end_call", "take_message", "not_sure"]
    assert tools["transfer"]["parameters"]["properties"]["department"]["enum"] == ["billing", "front_desk"]
    assert tools["transfer"]["parameters"]["required"] == ["department"]
    prompt = body["messages"][0]["content"]
    assert prompt.endswith(TOOL_GUIDE) and OUTPUT_FORMAT not in prompt
    assert "[interrupted]" in prompt


def test_without_destinations_there_is_no_transfer_tool(fake_model, make_brain):
    fake_model.enqueue(Stream("Hello.", **PACE))
    parts(make_brain(transfer={"destinations": {}, "default_destination": None}, intents=[]))
    assert [tool["function"]["name"] for tool in fake_model.requests[0]["tools"]] == [
        "end_call", "take_message", "not_sure"]


def test_sentences_decisions_and_the_token_count_in_order(fake_model, make_brain):
    fake_model.enqueue(Stream("Sure. One moment.", Tool("transfer", {"department": "billing"}), **PACE))
    assert parts(make_brain()) == [
        Sentence("Sure."), Sentence("One moment."), Decision("transfer", "billing"), Finished("complete", 6),
    ]


def test_a_decision_is_given_as_soon_as_something_follows_it(fake_model, make_brain):
    fake_model.enqueue(Stream(Tool("end_call"), Tool("not_sure"), "Goodbye now.", **PACE))
    got = parts(make_brain())
    assert got[:2] == [Decision("end"), Decision("not_sure")] and got[2] == Sentence("Goodbye now.")


def test_unknown_tools_and_bad_arguments(fake_model, make_brain, caplog):
    fake_model.enqueue(Stream("Hold on.", Tool("dial", {"number": "+19005550100"}),
                              Raw('data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m",'
                                  '"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"c","type":"function",'
                                  '"function":{"name":"transfer","arguments":"{not json"}}]},"finish_reason":null}]}'),
                              **PACE))
    got = parts(make_brain())
    assert Decision("transfer", None) in got  # to the default destination, by the dialog's rules
    assert not any(isinstance(part, Decision) and part.action not in ("transfer",) for part in got)
    assert "unknown tool 'dial'" in caplog.text


def test_a_reply_with_nothing_in_it_is_a_brain_error(fake_model, make_brain):
    fake_model.enqueue(Stream(**PACE))
    with pytest.raises(BrainError, match="no content"):
        parts(make_brain())


def test_one_retry_when_the_server_fails_before_the_stream(fake_model, make_brain):
    fake_model.enqueue(Status(503), Stream("We open at nine.", **PACE))
    assert parts(make_brain())[0] == Sentence("We open at nine.")
    assert len(fake_model.requests) == 2


def test_no_retry_for_a_refused_key(fake_model, make_brain):
    fake_model.enqueue(Status(401))
    with pytest.raises(BrainError, match="HTTP 401"):
        parts(make_brain())
    assert len(fake_model.requests) == 1


@pytest.mark.parametrize("behaviour", [HANG, Delay(3.0, then=Stream("Late.", **PACE))], ids=["hang", "late"])
def test_the_first_sentence_deadline_holds_whatever_the_server_does(fake_model, make_brain, behaviour):
    fake_model.enqueue(behaviour, behaviour)
    started = time.monotonic()
    with pytest.raises(BrainError, match="deadline"):
        parts(make_brain())
    assert TIMEOUT_S - 0.05 < time.monotonic() - started < TIMEOUT_S + 0.3


def test_stop_from_another_thread_ends_the_parts_and_the_connection(fake_model, make_brain):
    fake_model.enqueue(Stream("One. Two. Three. Four. Five. Six. Seven.", ttft_s=0.05, tokens_per_s=5))
    reply = make_brain().stream([], "count")
    got = []
    for part in reply.parts():
        got.append(part)
        if part == Sentence("Two."):
            stopped = time.monotonic()
            reply.stop()
    assert got[:2] == [Sentence("One."), Sentence("Two.")] and len(got) == 3
    assert got[2].ending == "stopped" and got[2].unspoken < len(" Three.")  # what came after "Two." is dropped
    assert fake_model.wait_for_hang_up(0, timeout_s=1) - stopped < 0.1


def test_a_first_sentence_slower_than_the_holding_delay_is_announced_once_and_only_before_it(fake_model, make_brain):
    text = "We open at nine. We close at five."
    fake_model.enqueue(Stream(text, ttft_s=0.5, tokens_per_s=100))
    reply = make_brain(ai={"holding_after_s": 0.2}).stream([], "when do you open")
    started, timed = time.monotonic(), []
    for part in reply.parts():
        timed.append((part, time.monotonic() - started))
    assert [part for part, _ in timed] == [StillWriting(), Sentence("We open at nine."), Sentence("We close at five."),
                                           Finished("complete", len(_TOKEN.findall(text)))]
    assert 0.2 <= timed[0][1] < 0.4 and timed[1][1] >= 0.5


@pytest.mark.parametrize("holding_s", [0.0, 0.4, TIMEOUT_S, 5.0], ids=["off", "later", "at-deadline", "after"])
def test_no_holding_part_when_it_is_off_later_than_the_first_sentence_or_past_the_deadline(
        fake_model, make_brain, holding_s):
    fake_model.enqueue(Stream("We open at nine.", ttft_s=0.2, tokens_per_s=100))
    got = parts(make_brain(ai={"holding_after_s": holding_s}))
    assert got == [Sentence("We open at nine."), Finished("complete", len(_TOKEN.findall("We open at nine.")))]


def test_after_the_holding_part_the_first_sentence_deadline_still_holds(fake_model, make_brain):
    fake_model.enqueue(HANG)
    reply = make_brain(ai={"holding_after_s": 0.2}).stream([], "hello")
    started, got = time.monotonic(), []
    with pytest.raises(BrainError):
        for part in reply.parts():
            got.append(part)
    assert got == [StillWriting()] and TIMEOUT_S - 0.05 < time.monotonic() - started < TIMEOUT_S + 0.5


def test_replies_one_after_another_share_one_connection(fake_model, make_brain):
    """Each stream is read to the end of its body, after `data: [DONE]`: otherwise the client cannot put the
    connection back in its pool, and every turn pays a new connection (with TLS, a new handshake) to the model."""
    brain = make_brain()
    for _ in range(4):
        fake_model.enqueue(Stream("We open at nine. We close at five.", **PACE))
        assert parts(brain)[-1] == Finished("complete", len(_TOKEN.findall("We open at nine. We close at five.")))
    assert len(fake_model.requests) == 4 and fake_model.connections == 1 and fake_model.hung_up == []


def timed_lines(*lines: tuple[str, float]):
    """Lines as a stream gives them: each after the wait given beside it (0: already read, in the buffer)."""
    for line, wait_s in lines:
        time.sleep(wait_s)
        yield line


def pulls(lines, reading: _Reading, speak_after: str | None = None) -> list[tuple[str, float]]:
    """Each line with how long the reader took to get it; `reading` has spoken from `speak_after` on."""
    got, it = [], iter(lines)
    while True:
        asked = time.monotonic()
        line = next(it, None)
        if line is None:
            return got
        got.append((line, time.monotonic() - asked))
        reading.spoken = reading.spoken or line == speak_after


def test_after_a_sentence_the_reader_pauses_after_each_wait_for_the_network(monkeypatch):
    monkeypatch.setattr(streaming, "GATHER_PAUSE_S", 0.2)
    reading, stopped = _Reading(), threading.Event()
    source = timed_lines(("a", 0.02), ("b", 0.0), ("c", 0.02), ("d", 0.02), ("e", 0.0), ("f", 0.0))
    got = dict(pulls(gathered(source, reading, stopped), reading, speak_after="b"))
    assert got["b"] < 0.015  # before any sentence: never a pause, however long "a" was waited for
    assert got["c"] < 0.1  # "b" came from the buffer: no pause after it
    assert 0.2 <= got["d"] < 0.3  # "c" was waited for: a pause, so what comes meanwhile is read in one go
    assert 0.2 <= got["e"] < 0.3 and got["f"] < 0.015  # likewise after "d", and none after the buffered "e"


class LateWake(threading.Event):
    """An event whose timed waits end `late_s` after they should: a worker too busy to wake its threads in time."""

    def __init__(self, late_s: float):
        super().__init__()
        self.late_s, self.waits = late_s, 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        time.sleep((timeout or 0) + self.late_s)
        return self.is_set()


@pytest.mark.parametrize(("late_s", "waits"), [(0.0, 3), (0.25, 1)], ids=["on-time", "late"])
def test_a_pause_that_ends_late_is_the_last(monkeypatch, late_s, waits):
    monkeypatch.setattr(streaming, "GATHER_PAUSE_S", 0.1)
    reading, stopped = _Reading(spoken=True), LateWake(late_s)
    lines = timed_lines(("a", 0.02), ("b", 0.02), ("c", 0.02), ("d", 0.0))
    assert list(gathered(lines, reading, stopped)) == ["a", "b", "c", "d"]
    assert stopped.waits == waits  # on time: after each waited line; late: once, then the reader reads at once


def test_a_stop_ends_the_readers_pause_at_once(monkeypatch):
    monkeypatch.setattr(streaming, "GATHER_PAUSE_S", 5.0)
    reading, stopped = _Reading(spoken=True), threading.Event()
    lines = gathered(timed_lines(("a", 0.02), ("b", 0.0)), reading, stopped)
    assert next(lines) == "a"
    threading.Timer(0.1, stopped.set).start()
    asked = time.monotonic()
    assert next(lines) == "b" and time.monotonic() - asked < 0.5


def test_a_later_sentence_goes_out_at_most_the_pause_after_it_was_written(fake_model, make_brain):
    text = "We open at nine. We close at five. We are closed on Sundays."
    fake_model.enqueue(Stream(text, ttft_s=0.05, tokens_per_s=40))
    reply = make_brain().stream([], "when do you open")
    got = [(part, time.monotonic()) for part in reply.parts()]
    sentences = [at for part, at in got if isinstance(part, Sentence)]
    timeline = fake_model.timeline(0)  # arrival, then each token: a sentence is complete with the next one
    ends = [timeline[len(_TOKEN.findall(text[: text.index(end) + len(end)])) + 1]
            for end in ("nine.", "five.")]
    assert len(sentences) == 3
    assert sentences[0] - ends[0] < 0.05  # the first sentence: no pause before it
    assert sentences[1] - ends[1] < streaming.GATHER_PAUSE_S + 0.05


def test_server_sent_events_are_read_as_the_protocol_says():
    lines = [": a comment", "data: {\"a\":", "data: 1}", "", "event: ignored", "data: {\"b\": 2}", "", "",
             "data: [DONE]", "", "data: {\"after\": true}", ""]
    assert list(sse_data(iter(lines))) == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize("line", ['data: {"error": {"message": "overloaded"}}', "data: [1, 2]", "data: {nope"])
def test_an_error_event_or_a_chunk_that_is_not_an_object_breaks_the_stream(line):
    with pytest.raises(ValueError):
        list(sse_data(iter([line, ""])))
