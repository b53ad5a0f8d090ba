"""A reply spoken while it is written: the real openai SDK streaming from the fake OpenAI server at a set pace,
through the receptionist's loop, the dialog and the runners, to the recording Call Control fake."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from pathlib import Path

import pytest
from test_receptionist import CALL, deliver, fresh, speak_ended

from brains.streaming import StreamingLLMBrain
from calls import Phase
from config import build_settings
from events import speech_client_state
from fake_openai import BREAK, FakeOpenAI, Raw, Stall, Stream, Tool
from fakes import ManualScheduler, RecordingTelnyx
from receptionist import Receptionist
from spec import validate_request

TIMEOUT_S, STALL_S = 1.0, 0.5
PACE = {"ttft_s": 0.1, "tokens_per_s": 50}
REPLY = "Dr. Patel sees patients from 9 a.m. to 5 p.m. on weekdays. The fee is $45.50. Anything else?"
SENTENCES = ["Dr. Patel sees patients from 9 a.m. to 5 p.m. on weekdays.", "The fee is $45.50.", "Anything else?"]


@pytest.fixture
def model(fake_model):
    """The conftest fake OpenAI server, under a shorter name: every test here talks to it."""
    return fake_model


@pytest.fixture
def make_service(raw_config, model, store_env):
    """A receptionist with the streaming LLM brain against `model`, the recording Call Control fake, manual timers."""
    made = []

    def make(server: FakeOpenAI = model, **ai) -> tuple[Receptionist, RecordingTelnyx]:
        raw = copy.deepcopy(raw_config)
        raw["webhook"]["verify_signatures"] = False
        raw["ai"].update({"stream": True, "timeout_s": TIMEOUT_S, "stall_timeout_s": STALL_S, **ai})
        settings = build_settings(raw, {"OPENAI_BASE_URL": server.base_url, **store_env})
        telnyx = RecordingTelnyx()
        made.append(Receptionist(settings, telnyx, StreamingLLMBrain(settings), scheduler=ManualScheduler()))
        return made[-1], telnyx

    yield make
    for receptionist in made:
        receptionist.shutdown()


@pytest.fixture
def service(make_service):
    return make_service()


def said(text: str, event_id: str | None = None):
    """The caller's final transcript, stamped with when it arrived (as the webhook route does)."""
    event = fresh("call_transcription", transcription_data={"transcript": text, "confidence": 0.95,
                                                            "is_final": True})
    return dataclasses.replace(event, received_at=time.time(), event_id=event_id or event.event_id)


def greeted(receptionist: Receptionist) -> None:
    deliver(receptionist, "call_initiated", "call_answered", speak_ended(1))


def speaks(telnyx: RecordingTelnyx):
    return [command for command in telnyx.commands if command.action == "speak"]


def log_turns(receptionist: Receptionist) -> list[dict]:
    deliver(receptionist, fresh("call_hangup"))
    path = Path(receptionist.runners.call_log.path)
    return [json.loads(line) for line in path.read_text().splitlines()][-1]["turns"]


# ---------------------------------------------------------------- speaking as it is written


def test_each_sentence_is_spoken_the_moment_it_is_complete(service, model):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream(REPLY, ttft_s=0.2, tokens_per_s=20))
    asked = time.monotonic()
    deliver(receptionist, said("when can I see the doctor"))
    reply = speaks(telnyx)[1:]
    assert [speak.body["payload"] for speak in reply] == SENTENCES
    # 20 tokens a second: the first sentence (14 tokens) is out after about 0.9 s, the whole reply after 1.3 s
    first_written = 0.2 + 14 / 20
    assert first_written - 0.1 < reply[0].at - asked < first_written + 0.3
    assert reply[-1].at - reply[0].at > 0.25
    assert [speak.body["client_state"] for speak in reply] == [speech_client_state(n) for n in (2, 3, 4)]
    assert len({speak.body["command_id"] for speak in telnyx.commands}) == len(telnyx.commands)
    for speak in reply:
        validate_request("speak", speak.body)
    state = receptionist.calls.get(CALL)
    assert state.speaking == 3 and state.history[-1].text == " ".join(SENTENCES)


def test_the_turn_listens_again_only_after_the_last_sentence_ended(service, model):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream(REPLY, **PACE))
    deliver(receptionist, said("when can I see the doctor"))
    timers = receptionist.scheduler.delays
    before = len(timers())
    deliver(receptionist, speak_ended(2), speak_ended(3))
    assert len(timers()) == before  # two of three ended: still speaking, no silence timer yet
    deliver(receptionist, speak_ended(4))
    assert timers()[before:] == [receptionist.policy.silence_timeout_s]
    (turn,) = log_turns(receptionist)
    assert turn["sentences"] == 3 and turn["barged_in"] is False and turn["action"] == "continue"
    assert turn["output_tokens"] == model_tokens(REPLY)
    assert 0 < turn["response_ms"] < turn["last_speak_ms"]


def model_tokens(text: str) -> int:
    """What the fake counts for a text reply: its tokens, no tool calls."""
    from fake_openai import _TOKEN

    return len(_TOKEN.findall(text))


def test_command_ids_are_the_same_when_the_same_reply_is_replayed(make_service, model):
    ids = []
    for _ in range(2):
        receptionist, telnyx = make_service()
        greeted(receptionist)
        model.enqueue(Stream(REPLY, **PACE))
        deliver(receptionist, said("when can I see the doctor", "the-same-webhook"))
        ids.append([speak.body["command_id"] for speak in speaks(telnyx)])
    assert ids[0] == ids[1] and len(set(ids[0])) == 4


# ---------------------------------------------------------------- decisions (tool calls)


@pytest.mark.both_stores
def test_a_transfer_waits_for_the_last_queued_sentence(service, model, settings):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream("Of course. Let me put you through to billing.", Tool("transfer", {"department": "billing"}),
                         **PACE))
    deliver(receptionist, said("I have a question about my invoice"))
    assert [s.body["payload"] for s in speaks(telnyx)[1:]] == ["Of course.", "Let me put you through to billing."]
    deliver(receptionist, speak_ended(2))
    assert "transfer" not in telnyx.actions()
    deliver(receptionist, speak_ended(3))
    assert telnyx.actions()[-1] == "transfer"
    assert telnyx.commands[-1].body["to"] == settings.destinations["billing"]
    assert len(speaks(telnyx)) == 3  # the model announced it: no second announcement


@pytest.mark.parametrize("where", ["before", "between", "after"])
def test_end_call_from_a_tool_call_anywhere_in_the_stream(service, model, where):
    receptionist, telnyx = service
    greeted(receptionist)
    parts = {"before": (Tool("end_call"), "You're welcome. Take care."),
             "between": ("You're welcome.", Tool("end_call"), " Take care."),
             "after": ("You're welcome. Take care.", Tool("end_call"))}[where]
    model.enqueue(Stream(*parts, **PACE))
    deliver(receptionist, said("great, thanks, bye"))
    goodbye = receptionist.policy.lines["goodbye"]
    assert [s.body["payload"] for s in speaks(telnyx)[1:]] == ["You're welcome.", "Take care.", goodbye]
    deliver(receptionist, speak_ended(2), speak_ended(3))
    assert "hangup" not in telnyx.actions()
    deliver(receptionist, speak_ended(4))
    assert telnyx.actions()[-1] == "hangup"


def test_a_department_policy_refuses_is_neither_promised_nor_dialled(service, model, settings):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream(Tool("transfer", {"department": "legal"}), "I'll put you through to legal.", **PACE))
    deliver(receptionist, said("I need a lawyer"))
    lines = receptionist.policy.lines
    assert [s.body["payload"] for s in speaks(telnyx)[1:]] == [lines["transfer_announcement"]]
    deliver(receptionist, speak_ended(2))
    default = settings.transfer.default_destination
    assert telnyx.commands[-1].action == "transfer"
    assert telnyx.commands[-1].body["to"] == settings.destinations[default]


def test_a_refused_department_named_after_the_words_gets_the_announcement_then_the_default(
    service, model, settings
):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream("One moment please.", Tool("transfer", {"department": "legal"}), **PACE))
    deliver(receptionist, said("I need a lawyer"))
    lines = receptionist.policy.lines
    assert [s.body["payload"] for s in speaks(telnyx)[1:]] == ["One moment please.", lines["transfer_announcement"]]
    deliver(receptionist, speak_ended(2), speak_ended(3))
    assert telnyx.commands[-1].body["to"] == settings.destinations[settings.transfer.default_destination]


def test_not_sure_counts_as_a_low_confidence_turn(service, model, settings):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream("Sorry, could you say that again?", Tool("not_sure"), **PACE),
                  Stream(Tool("not_sure"), **PACE))
    deliver(receptionist, said("blorp the frammis"))
    assert [s.body["payload"] for s in speaks(telnyx)[1:]] == ["Sorry, could you say that again?"]
    state = receptionist.calls.get(CALL)
    assert state.low_confidence_streak == 1 and state.phase is Phase.CONVERSING
    deliver(receptionist, speak_ended(2), said("frammis the blorp"))
    assert settings.dialog.max_low_confidence_turns == 2
    assert state.phase is Phase.TRANSFERRING and state.escalation_reason == "model not sure"


def test_take_message_from_a_tool_call(service, model):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream("I can take a message for Dr. Patel.", Tool("take_message"), **PACE))
    # Not words the dialog itself reads as asking to leave a message (dialog.py): the model decides here.
    deliver(receptionist, said("tell the doctor I will be late for my appointment"))
    assert [s.body["payload"] for s in speaks(telnyx)[1:]] == ["I can take a message for Dr. Patel."]
    assert receptionist.calls.get(CALL).phase is Phase.TAKING_MESSAGE


def test_a_server_without_tools_still_speaks_and_says_so_once(make_service, caplog):
    with FakeOpenAI(tools=False) as bare:
        receptionist, telnyx = make_service(bare)
        greeted(receptionist)
        bare.enqueue(Stream("We open at nine.", **PACE), Stream("Bye for now.", **PACE))
        with caplog.at_level(logging.WARNING, logger="brains.streaming"):
            deliver(receptionist, said("when do you open"), speak_ended(2), said("thanks"))
        assert [s.body["payload"] for s in speaks(telnyx)[1:]] == ["We open at nine.", "Bye for now."]
        assert ["tools" in body for body in bare.requests] == [True, False, False]  # refused once, then never sent
        assert [r.message for r in caplog.records].count(
            "llm: the model server refuses tools; replies are spoken, decisions left to the dialog") == 1


# ---------------------------------------------------------------- barge-in


@pytest.mark.both_stores
def test_barge_in_stops_playback_closes_the_stream_and_keeps_only_what_was_heard(service, model):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream("First we check. Then we book. Then we confirm. Then we remind you. Bye.",
                         ttft_s=0.05, tokens_per_s=8))
    receptionist.accept(said("how does booking work"))
    telnyx.wait_for(len(telnyx.commands) + 2)  # two sentences out, the model still writing
    receptionist.accept(speak_ended(2))  # the caller heard the first, the second is playing
    cut_at = time.monotonic()
    receptionist.accept(said("sorry, just book me in"))
    hung_up_at = model.wait_for_hang_up(0, timeout_s=2)
    assert hung_up_at - cut_at < 0.1  # at once, not at the model's next token (1/8 s) or the reply's end
    assert receptionist.queues.wait_idle(5)
    actions = telnyx.actions()
    stop = telnyx.commands[actions.index("playback_stop")]
    assert stop.body["stop"] == "all"
    validate_request("playback_stop", stop.body)
    spoken = [s.body["payload"] for s in speaks(telnyx)[1:]]
    assert spoken[:2] == ["First we check.", "Then we book."]
    assert "Then we confirm." not in spoken and actions.index("playback_stop") > actions.index("speak", 2)
    second = model.requests[1]["messages"]
    assert second[-2:] == [{"role": "assistant", "content": "First we check. Then we book. [interrupted]"},
                           {"role": "user", "content": "sorry, just book me in"}]
    turns = log_turns(receptionist)
    assert turns[0]["barged_in"] is True and turns[0]["action"] == "stopped" and turns[0]["sentences"] == 2


def test_the_transcript_a_reply_answers_never_stops_it(service, model):
    """The worker may start the reply before the request thread that accepted its transcript checks whether that
    transcript cuts a reply short (Receptionist.accept): the reply it caused, or a redelivery of it, is not cut."""
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream(REPLY, ttft_s=0.05, tokens_per_s=20))
    question = said("when can I see the doctor")
    receptionist.accept(question)
    telnyx.wait_for(len(telnyx.commands) + 1)
    assert receptionist.runners.stop_reply(CALL, question.event_id) is False
    assert receptionist.queues.wait_idle(5)
    assert [s.body["payload"] for s in speaks(telnyx)[1:]] == SENTENCES and model.hung_up == []


# ---------------------------------------------------------------- the holding phrase (ai.holding_after_s)


def test_a_slow_first_sentence_is_preceded_by_the_holding_phrase(make_service, model):
    receptionist, telnyx = make_service(holding_after_s=0.3)
    greeted(receptionist)
    model.enqueue(Stream(REPLY, ttft_s=0.6, tokens_per_s=50))
    timers = receptionist.scheduler.delays
    before = len(timers())
    asked = time.monotonic()
    deliver(receptionist, said("when can I see the doctor"))
    reply = speaks(telnyx)[1:]
    holding = receptionist.policy.lines["holding"]
    assert [speak.body["payload"] for speak in reply] == [holding, *SENTENCES]
    assert 0.3 <= reply[0].at - asked < 0.55 and reply[1].at - asked >= 0.6
    assert [speak.body["client_state"] for speak in reply] == [speech_client_state(n) for n in (2, 3, 4, 5)]
    for speak in reply:
        validate_request("speak", speak.body)
    deliver(receptionist, speak_ended(2), speak_ended(3), speak_ended(4))
    assert len(timers()) == before  # the holding phrase counts as queued speech: listening waits for the reply
    deliver(receptionist, speak_ended(5))
    assert timers()[before:] == [receptionist.policy.silence_timeout_s]
    assert receptionist.calls.get(CALL).history[-1].text == " ".join(SENTENCES)  # the model's words only
    (turn,) = log_turns(receptionist)
    assert turn["sentences"] == 3 and turn["reply"] is not None
    assert 300 <= turn["holding_ms"] < turn["response_ms"] < turn["last_speak_ms"]


def test_a_first_sentence_in_time_gets_no_holding_phrase(make_service, model):
    receptionist, telnyx = make_service(holding_after_s=0.5)
    greeted(receptionist)
    model.enqueue(Stream(REPLY, **PACE))
    deliver(receptionist, said("when can I see the doctor"))
    assert [speak.body["payload"] for speak in speaks(telnyx)[1:]] == SENTENCES
    (turn,) = log_turns(receptionist)
    assert turn["holding_ms"] is None and turn["response_ms"] is not None


def test_barge_in_over_the_holding_phrase_stops_it_and_the_reply_behind_it(make_service, model):
    receptionist, telnyx = make_service(holding_after_s=0.2)
    greeted(receptionist)
    model.enqueue(Stream("We are open every day.", ttft_s=0.8, tokens_per_s=50))
    sent = len(telnyx.commands)
    receptionist.accept(said("are you open today"))
    telnyx.wait_for(sent + 1)
    assert telnyx.commands[-1].body["payload"] == receptionist.policy.lines["holding"]
    receptionist.accept(said("I mean tomorrow"))
    model.wait_for_hang_up(0, timeout_s=2)
    assert receptionist.queues.wait_idle(5)
    actions = [command.action for command in telnyx.commands[sent:]]
    assert actions[:2] == ["speak", "playback_stop"]
    assert "We are open every day." not in telnyx.spoken()
    assert model.requests[1]["messages"][-2:] == [{"role": "assistant", "content": "[interrupted]"},
                                                  {"role": "user", "content": "I mean tomorrow"}]


def test_a_model_that_never_answers_gets_the_holding_phrase_then_the_fallback(make_service, model):
    receptionist, telnyx = make_service(holding_after_s=0.2)
    greeted(receptionist)
    model.enqueue(Stream("We are", Stall(3.0), " open.", **PACE))
    deliver(receptionist, said("are you open"))
    lines = receptionist.policy.lines
    assert speaks(telnyx)[1].body["payload"] == lines["holding"]
    assert speaks(telnyx)[2].body["payload"] == lines["fallback"]


def test_barge_in_before_the_first_sentence_drops_the_reply_without_a_fallback(service, model):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream("We are open every day.", ttft_s=0.6, tokens_per_s=50))
    receptionist.accept(said("are you open today"))
    model.wait_for_requests(1)
    receptionist.accept(said("I mean tomorrow"))
    model.wait_for_hang_up(0, timeout_s=2)
    assert receptionist.queues.wait_idle(5)
    fallback = receptionist.policy.lines["fallback"]
    assert fallback not in telnyx.spoken() and "We are open every day." not in telnyx.spoken()
    assert model.requests[1]["messages"][-2:] == [{"role": "assistant", "content": "[interrupted]"},
                                                  {"role": "user", "content": "I mean tomorrow"}]


def test_a_hangup_mid_reply_closes_the_stream(service, model):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream("One thing first. " + "And then another thing. " * 10, ttft_s=0.05, tokens_per_s=10))
    receptionist.accept(said("tell me everything"))
    telnyx.wait_for(len(telnyx.commands) + 1)
    receptionist.accept(fresh("call_hangup"))
    model.wait_for_hang_up(0, timeout_s=1)
    assert receptionist.queues.wait_idle(5)
    assert receptionist.calls.get(CALL) is None


# ---------------------------------------------------------------- deadlines, stalls and broken streams


def test_a_stall_before_the_first_sentence_gets_the_fallback_at_the_deadline(service, model):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream("We are", Stall(3.0), " open.", **PACE))
    started = time.monotonic()
    deliver(receptionist, said("are you open"))
    fallback_at = speaks(telnyx)[-1].at - started
    assert speaks(telnyx)[-1].body["payload"] == receptionist.policy.lines["fallback"]
    assert TIMEOUT_S - 0.05 < fallback_at < TIMEOUT_S + 0.5
    assert model.wait_for_hang_up(0, timeout_s=1)


@pytest.mark.both_stores
@pytest.mark.parametrize("cut", [Stall(3.0), BREAK, Raw("data: {not json")], ids=["stall", "break", "malformed"])
def test_a_stream_cut_short_after_the_first_sentence_ends_with_the_reprompt(service, model, cut):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream("We open at nine. On Satur", cut, "days at ten.", **PACE))
    deliver(receptionist, said("when do you open"))
    reprompt = receptionist.policy.lines["reprompt"]
    assert [s.body["payload"] for s in speaks(telnyx)[1:]] == ["We open at nine.", reprompt]
    (turn,) = log_turns(receptionist)
    assert turn["action"] == {"stall": "stalled"}.get(cut.__class__.__name__.lower(), "broken")


def test_malformed_chunks_before_the_first_sentence_get_the_fallback(service, model):
    receptionist, telnyx = service
    greeted(receptionist)
    model.enqueue(Stream("We", Raw("data: [1, 2"), " open.", **PACE))
    deliver(receptionist, said("when do you open"))
    assert telnyx.spoken()[-1] == receptionist.policy.lines["fallback"]
