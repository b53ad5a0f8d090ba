"""The fake's hand-written validation agrees with Telnyx's official schema for every action it serves."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import ValidationError

from simulator.validation import ACTIONS, validate
from tests.spec import DEFAULT_SPEC_PATH, request_schema, validate_request

SIMPLE_KINDS = ("string", "integer", "boolean", "string|integer", "uuid")


def spec_accepts(action: str, body: dict) -> tuple[bool, str | None]:
    try:
        validate_request(action, body)
    except ValidationError as error:
        return False, "/" + "/".join(str(p) for p in error.absolute_path)
    return True, None


def rule_parts(rule: str) -> tuple[str, list[str], tuple[int, int] | None]:
    kind, _, allowed = rule.partition("=")
    kind, _, bounds = kind.partition("[")
    low_high = tuple(int(x) for x in bounds.rstrip("]").split("..")) if bounds else None
    return kind, allowed.split("|") if allowed else [], low_high


def spec_property(action: str, name: str) -> dict:
    node = request_schema(action)["properties"][name]
    while "allOf" in node and len(node) == 1:
        node = node["allOf"][0]
    if set(node) == {"$ref"}:  # a named schema (record_start's transcription_language: TranscriptionLanguage)
        node = json.loads(DEFAULT_SPEC_PATH.read_text())["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_tables_list_exactly_the_spec_fields_and_required_fields(action):
    schema = request_schema(action)
    required, fields = ACTIONS[action]
    assert set(fields) == set(schema["properties"])
    assert set(required) == set(schema.get("required", []))


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_enums_and_ranges_match_the_spec(action):
    for name, rule in ACTIONS[action][1].items():
        kind, allowed, bounds = rule_parts(rule)
        prop = spec_property(action, name)
        assert sorted(allowed) == sorted(prop.get("enum", [])), name
        if kind in ("string", "integer", "boolean"):
            assert prop.get("type") == kind and prop.get("format") in (None, "int32"), name
        if kind == "uuid":
            assert (prop.get("type"), prop.get("format")) == ("string", "uuid"), name
        if bounds:
            limits = (prop.get("minimum", prop.get("minLength")), prop.get("maximum", prop.get("maxLength")))
            assert bounds == limits, name


def valid_value(rule: str) -> st.SearchStrategy:
    kind, allowed, bounds = rule_parts(rule)
    if allowed:
        return st.sampled_from(allowed)
    if kind == "integer":
        return st.integers(*bounds) if bounds else st.integers(-10**6, 10**6)
    if kind == "boolean":
        return st.booleans()
    if kind == "uuid":
        return st.uuids().map(str)
    if kind == "string|integer":
        return st.one_of(st.text(max_size=8), st.integers(0, 100))
    low, high = bounds or (0, 20)
    return st.text(min_size=low, max_size=high)


def invalid_value(rule: str) -> st.SearchStrategy:
    kind, allowed, bounds = rule_parts(rule)
    wrong_type = {"string": st.integers(), "integer": st.text(max_size=5) | st.booleans(), "boolean": st.integers(),
                  "object": st.text(max_size=5), "array": st.text(max_size=5), "string|integer": st.booleans(),
                  "uuid": st.text(max_size=8) | st.integers()}
    options = [wrong_type[kind], st.none()]
    if allowed:
        options.append(st.text(max_size=12).filter(lambda v: v not in allowed))
    if bounds and kind == "integer":
        options.append(st.integers(bounds[1] + 1, bounds[1] + 1000) | st.integers(-1000, bounds[0] - 1))
    if bounds and kind == "string":
        options.append(st.text(min_size=bounds[1] + 1, max_size=bounds[1] + 5))
    return st.one_of(options)


@st.composite
def bodies(draw, action: str, broken: bool) -> tuple[dict, str | None]:
    required, fields = ACTIONS[action]
    simple = sorted(name for name, rule in fields.items() if rule_parts(rule)[0] in SIMPLE_KINDS)
    chosen = set(draw(st.lists(st.sampled_from(simple), max_size=6))) | set(required)
    body = {name: draw(valid_value(fields[name])) for name in sorted(chosen)}
    if not broken:
        return body, None
    if required and draw(st.booleans()):
        victim = draw(st.sampled_from(required))
        del body[victim]
        return body, victim
    victim = draw(st.sampled_from(sorted(fields)))
    body[victim] = draw(invalid_value(fields[victim]))
    return body, victim


@pytest.mark.parametrize("action", sorted(ACTIONS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fake_and_spec_accept_the_same_valid_bodies(action, data):
    body, _ = data.draw(bodies(action, broken=False))
    assert spec_accepts(action, body) == (True, None)
    assert validate(action, body) is None


@pytest.mark.parametrize("action", sorted(ACTIONS))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_fake_and_spec_reject_the_same_broken_bodies_and_name_the_field(action, data):
    body, victim = data.draw(bodies(action, broken=True))
    accepted, spec_pointer = spec_accepts(action, body)
    problem = validate(action, body)
    assert not accepted and problem is not None, (body, victim)
    assert problem.pointer == f"/{victim}"
    assert spec_pointer in (f"/{victim}", "/")  # the spec reports a missing field at the object itself
