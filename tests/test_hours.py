"""hours.py and the dialog after hours: a frozen clock, both daylight-saving changes, a closure day."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime

import pytest

from brains.llm import with_local_time
from calls import CallState, Phase
from commands import Speak, StartTranscription, Transfer
from config import ConfigError, build_settings
from dialog import Policy, decide
from events import CallEvent
from hours import OpeningHours, parse_span

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # any 32 bytes: these tests verify no webhook
CLINIC = {
    "monday": ["08:00-17:00"], "tuesday": ["08:00-17:00"], "wednesday": ["08:00-12:00", "13:00-17:00"],
    "thursday": ["08:00-17:00"], "friday": ["08:00-17:00"], "saturday": ["09:00-13:00"],
}


def utc(*fields: int) -> float:
    """A frozen instant, written in UTC so each test says exactly which moment it means."""
    return datetime(*fields, tzinfo=UTC).timestamp()


@pytest.fixture
def new_york() -> OpeningHours:
    return OpeningHours.build("America/New_York", CLINIC, [date(2026, 12, 25)])


@pytest.mark.parametrize("text, span", [("08:00-17:30", (480, 1050)), ("00:00-24:00", (0, 1440)),
                                        (" 13:05-13:06 ", (785, 786))])
def test_ranges_are_minutes_of_the_local_day(text, span):
    assert parse_span(text) == span


@pytest.mark.parametrize("text, message", [("8-17", "not a range"), ("17:00-08:00", "ends before it starts"),
                                           ("09:00-09:00", "ends before"), ("25:00-26:00", "not a time of day"),
                                           ("08:60-09:00", "not a time of day"), ("08:00-24:01", "not a time")])
def test_malformed_ranges_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_span(text)


def test_a_weekday_inside_and_outside_its_hours(new_york):
    # Tuesday 10 November 2026, New York is UTC-5.
    assert new_york.is_open(utc(2026, 11, 10, 13, 0))  # 08:00 local: opening minute
    assert new_york.is_open(utc(2026, 11, 10, 21, 59))  # 16:59
    assert not new_york.is_open(utc(2026, 11, 10, 22, 0))  # 17:00: the range's end is closed
    assert not new_york.is_open(utc(2026, 11, 10, 12, 59))  # 07:59


def test_several_ranges_a_day_close_over_lunch(new_york):
    # Wednesday 11 November 2026.
    assert new_york.is_open(utc(2026, 11, 11, 16, 59))  # 11:59
    assert not new_york.is_open(utc(2026, 11, 11, 17, 30))  # 12:30
    assert new_york.is_open(utc(2026, 11, 11, 18, 0))  # 13:00


def test_a_day_left_out_is_closed_all_day(new_york):
    # Sunday 8 November 2026 at noon local, and 11 pm local (the example).
    assert not new_york.is_open(utc(2026, 11, 8, 17, 0))
    assert not new_york.is_open(utc(2026, 11, 9, 4, 0))


def test_spring_forward_keeps_the_schedule_in_wall_clock_time(new_york):
    # Clocks went forward on Sunday 8 March 2026. On Monday 9 March, 12:30 UTC is 08:30 EDT (open); with last
    # week's offset (EST) it would be 07:30 and closed.
    assert new_york.is_open(utc(2026, 3, 9, 12, 30))
    assert not new_york.is_open(utc(2026, 3, 9, 11, 30))  # 07:30 EDT
    assert not new_york.is_open(utc(2026, 3, 9, 21, 0))  # 17:00 EDT; with EST it would be 16:00, open
    assert new_york.describe(utc(2026, 3, 9, 12, 30)).startswith("It is now Monday 9 March 2026, 08:30 local time")


def test_fall_back_keeps_the_schedule_in_wall_clock_time(new_york):
    # Clocks went back on Sunday 1 November 2026. On Monday 2 November, 12:30 UTC is 07:30 EST (closed); with the
    # summer offset (EDT) it would be 08:30 and open.
    assert not new_york.is_open(utc(2026, 11, 2, 12, 30))
    assert new_york.is_open(utc(2026, 11, 2, 13, 30))  # 08:30 EST
    assert new_york.is_open(utc(2026, 11, 2, 21, 30))  # 16:30 EST; with EDT it would be 17:30, closed


def test_the_repeated_hour_of_fall_back_counts_once_each_time_it_happens():
    night_desk = OpeningHours.build("America/New_York", {"sunday": ["01:00-02:00"]})
    assert night_desk.is_open(utc(2026, 11, 1, 5, 30))  # 01:30 EDT, the first time
    assert night_desk.is_open(utc(2026, 11, 1, 6, 30))  # 01:30 EST, the second time
    assert not night_desk.is_open(utc(2026, 11, 1, 7, 30))  # 02:30 EST


def test_a_closure_day_is_closed_whatever_the_weekday_says(new_york):
    # Friday 25 December 2026, 10:00 local, then the same time on Friday 18 December.
    assert not new_york.is_open(utc(2026, 12, 25, 15, 0))
    assert new_york.is_open(utc(2026, 12, 18, 15, 0))
    assert "the business is closed right now" in new_york.describe(utc(2026, 12, 25, 15, 0))


def test_a_closure_is_a_local_date_not_a_utc_one(new_york):
    # 24 December 2026, 22:00 in New York is already the 25th in UTC: the clinic's closure has not begun.
    late = OpeningHours.build("America/New_York", {"thursday": ["20:00-23:00"]}, [date(2026, 12, 25)])
    assert late.is_open(utc(2026, 12, 25, 3, 0))


def test_without_a_weekly_schedule_only_closures_close():
    hours = OpeningHours.build("Europe/Berlin", {}, [date(2026, 12, 25)])
    # Berlin is UTC+1 in December: 22:30 UTC on the 24th is 23:30 local (open), 23:30 UTC is the 25th (closed).
    assert hours.is_open(utc(2026, 12, 24, 22, 30)) and not hours.is_open(utc(2026, 12, 24, 23, 30))


# ---------------------------------------------------------------- config


def test_the_shipped_schedule_is_valid(shipped_config):
    settings = build_settings(shipped_config, {"TELNYX_PUBLIC_KEY": KEY})
    hours = settings.business.opening_hours()
    assert hours.zone.key == "America/Chicago" and date(2026, 12, 25) in hours.closed_on
    assert not hours.is_open(utc(2026, 12, 7, 5, 0))  # Sunday 6 December, 11 pm in Chicago: closed


def test_schedule_problems_are_listed_together(raw_config):
    raw_config["business"].update(timezone="Mars/Olympus", open={"funday": ["09:00-10:00"], "monday": ["9-5"]},
                                  closed_on=["2026-02-30"])
    raw_config["transfer"]["after_hours_destination"] = "night_line"
    with pytest.raises(ConfigError) as caught:
        build_settings(raw_config, {"TELNYX_PUBLIC_KEY": KEY})
    problems = "\n".join(caught.value.problems)
    for expected in ("business.timezone: 'Mars/Olympus' is not an IANA time zone", "business.open.funday: must be",
                     "business.open.monday[0]: '9-5' is not a range", "business.closed_on[0]:",
                     "transfer.after_hours_destination: 'night_line' is not one of transfer.destinations"):
        assert expected in problems


def test_a_schedule_without_a_zone_is_refused(raw_config):
    raw_config["business"].pop("timezone")
    raw_config["business"]["open"] = {"monday": ["08:00-17:00"]}
    with pytest.raises(ConfigError, match="business.open and business.closed_on need business.timezone"):
        build_settings(raw_config, {"TELNYX_PUBLIC_KEY": KEY})


# ---------------------------------------------------------------- the dialog after hours

SUNDAY_NIGHT = utc(2026, 12, 7, 5, 0)  # Sunday 6 December 2026, 23:00 in Chicago
MONDAY_MORNING = utc(2026, 12, 7, 15, 0)  # Monday 7 December 2026, 09:00 in Chicago


def clinic_policy(raw_config, **transfer) -> Policy:
    raw = copy.deepcopy(raw_config)
    raw["business"].update(open=CLINIC, closed_on=[date(2026, 12, 25)])
    raw["transfer"].update(transfer)
    return Policy.from_settings(build_settings(raw, {"TELNYX_PUBLIC_KEY": KEY}))


def call_at(policy: Policy, at: float) -> tuple[CallState, list]:
    state = CallState("v3:hours")
    decide(state, CallEvent("e1", "call.initiated", "v3:hours",
                            {"call_control_id": "v3:hours", "direction": "incoming", "from": "+13125550111",
                             "to": "+13125550100"}, received_at=at), policy)
    greeting = decide(state, CallEvent("e2", "call.answered", "v3:hours", {"call_control_id": "v3:hours"},
                                       received_at=at + 1), policy)
    return state, greeting


def caller_says(state: CallState, policy: Policy, text: str) -> list:
    decide(state, CallEvent("e3", "call.speak.ended", "v3:hours", {"call_control_id": "v3:hours"}), policy)
    data = {"transcript": text, "confidence": 0.95, "is_final": True}
    return decide(state, CallEvent("e4", "call.transcription", "v3:hours",
                                   {"call_control_id": "v3:hours", "transcription_data": data}), policy)


def test_after_hours_the_caller_hears_the_after_hours_greeting(raw_config):
    policy = clinic_policy(raw_config)
    state, greeting = call_at(policy, SUNDAY_NIGHT)
    assert state.after_hours and state.called == "+13125550100"
    assert greeting[0] == Speak(raw_config["assistant"]["after_hours_greeting"], 1)
    assert isinstance(greeting[1], StartTranscription)
    _, open_greeting = call_at(policy, MONDAY_MORNING)
    assert open_greeting[0].text == raw_config["assistant"]["greeting"]


def test_after_hours_no_transfer_is_tried_and_a_message_is_offered(raw_config):
    policy = clinic_policy(raw_config)
    state, _ = call_at(policy, SUNDAY_NIGHT)
    commands = caller_says(state, policy, "can I talk to a real person please")
    assert not any(isinstance(c, Transfer) for c in commands)
    assert [c.text for c in commands if isinstance(c, Speak)] == [raw_config["assistant"]["no_human_available"]]
    assert state.phase is Phase.TAKING_MESSAGE


def test_during_opening_hours_the_same_request_is_transferred(raw_config):
    policy = clinic_policy(raw_config)
    state, _ = call_at(policy, MONDAY_MORNING)
    caller_says(state, policy, "can I talk to a real person please")
    assert state.phase is Phase.TRANSFERRING and state.after_speech == Transfer("+15555550100", "front_desk")


def test_on_a_closure_day_the_clinic_is_closed_at_midday(raw_config):
    policy = clinic_policy(raw_config)
    state, greeting = call_at(policy, utc(2026, 12, 25, 18, 0))  # Friday, 12:00 in Chicago
    assert state.after_hours and greeting[0].text == raw_config["assistant"]["after_hours_greeting"]


def test_after_hours_only_the_after_hours_destination_is_dialled(raw_config):
    raw_config["transfer"]["destinations"]["on_call"] = "+15555550199"
    policy = clinic_policy(raw_config, after_hours_destination="on_call")
    state, _ = call_at(policy, SUNDAY_NIGHT)
    caller_says(state, policy, "can I talk to a real person please")
    assert state.after_speech == Transfer("+15555550199", "on_call")


def test_the_llm_is_told_the_local_time_and_that_the_business_is_closed(raw_config):
    hours = clinic_policy(raw_config).hours
    closed = with_local_time("PROMPT", hours, SUNDAY_NIGHT)
    assert closed.startswith("PROMPT\n\nIt is now Sunday 6 December 2026, 23:00 local time (America/Chicago); "
                             "the business is closed right now.")
    assert "offer to take a message" in closed
    opened = with_local_time("PROMPT", hours, MONDAY_MORNING)
    assert "Monday 7 December 2026, 09:00" in opened and "open right now" in opened and "message" not in opened
    assert with_local_time("PROMPT", None, SUNDAY_NIGHT) == "PROMPT"
