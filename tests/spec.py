"""Check Call Control request bodies and webhook bodies against Telnyx's official OpenAPI spec.

Tests only: the service never reads the spec. It is the subset of Telnyx's spec kept in
``tests/openapi/call-control.json`` (schemas unchanged; ``tests/openapi/extract.py`` says where it comes
from and how to refresh it), or any full spec named by ``TELNYX_OPENAPI_SPEC``, loaded once per path.
``$ref``s are resolved by a ``referencing`` Registry holding the whole spec.

The spec's webhook schemas mark nothing as required and type ``client_state`` as a plain string,
yet real deliveries always carry the envelope and the call identifiers, and send
``client_state: null`` when none was set. On loading we tighten the webhook schemas to that, so a
fixture missing ``call_control_id`` fails while a real ``client_state: null`` passes.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID

from jsonschema import Draft4Validator, Draft202012Validator, FormatChecker, ValidationError
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT4, DRAFT202012

SPEC_URI = "urn:telnyx:call-control"
DEFAULT_SPEC_PATH = Path(__file__).resolve().parent / "openapi" / "call-control.json"
ACTION_PATH = "/calls/{{call_control_id}}/actions/{action}"
FALLBACK_REQUEST_SCHEMAS = {
    "answer": "AnswerRequest",
    "speak": "SpeakRequest",
    "hangup": "HangupRequest",
    "transfer": "TransferCallRequest",
    "reject": "RejectRequest",
    "transcription_start": "TranscriptionStartRequest",
    "transcription_stop": "TranscriptionStopRequest",
    "playback_stop": "PlaybackStopRequest",
    "gather_using_speak": "GatherUsingSpeakRequest",
}
ENVELOPE_FIELDS = ("record_type", "event_type", "id", "occurred_at", "payload")
CALL_ID_FIELDS = ("call_control_id", "call_leg_id", "call_session_id", "connection_id")
META_SCHEMA = {
    "type": "object",
    "properties": {"attempt": {"type": "integer", "minimum": 1}, "delivered_to": {"type": "string"}},
}

FORMAT_CHECKER = FormatChecker(formats=())


@FORMAT_CHECKER.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    """Strings in a uuid field parse as a UUID."""
    if isinstance(value, str):
        UUID(value)
    return True


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """Strings in a date-time field are ISO 8601 with a UTC offset."""
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


@dataclass(frozen=True)
class _Spec:
    """The loaded spec, the registry that resolves its refs, and the webhook map."""

    document: dict[str, Any]
    registry: Registry
    validator_class: type
    webhooks: dict[str, str]


def spec_path() -> Path:
    """Where the spec is read from: TELNYX_OPENAPI_SPEC, else the subset kept in the repository."""
    override = os.environ.get("TELNYX_OPENAPI_SPEC")
    return Path(override) if override else DEFAULT_SPEC_PATH.resolve()


def openapi_version() -> str:
    """The spec's `openapi` version string."""
    return _spec().document["openapi"]


def event_types() -> list[str]:
    """Every event type the spec's webhooks section defines, sorted."""
    return sorted(_spec().webhooks)


def request_schema_name(action: str) -> str:
    """The component schema name for an action's request body."""
    return _request_ref(action).rsplit("/", 1)[-1]


def webhook_schema_name(event_type: str) -> str:
    """The component schema name of the envelope for an event type."""
    return _webhook_ref(event_type).rsplit("/", 1)[-1]


def request_schema(action: str) -> dict[str, Any]:
    """The request body schema of an action, with every $ref inlined (a fresh copy)."""
    return copy.deepcopy(_inlined(spec_path(), _request_ref(action)))


def webhook_schema(event_type: str) -> dict[str, Any]:
    """The (tightened) envelope schema of an event type, with every $ref inlined (a fresh copy)."""
    return copy.deepcopy(_inlined(spec_path(), _webhook_ref(event_type)))


def validate_request(action: str, body: dict[str, Any]) -> None:
    """Raise ValidationError unless body is a valid request body for the action."""
    _raise_best(_validator(spec_path(), _request_ref(action)), body)


def validate_webhook(body: dict[str, Any]) -> None:
    """Raise ValidationError unless body is a valid webhook for its data.event_type."""
    data = body.get("data") if isinstance(body, dict) else None
    event_type = data.get("event_type") if isinstance(data, dict) else None
    if event_type not in _spec().webhooks:
        raise ValidationError(f"no webhook schema for event_type {event_type!r}", path=["data", "event_type"])
    _raise_best(_validator(spec_path(), _webhook_ref(event_type)), body)


def schema_name_from_paths(action: str) -> str | None:
    """The request schema name the spec's paths give an action, or None when it gives none."""
    try:
        operation = _spec().document["paths"][ACTION_PATH.format(action=action)]["post"]
        return operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    except (KeyError, TypeError):
        return None


def nullable_to_type_union(node: Any) -> None:
    """Rewrite OpenAPI 3.0 `nullable: true` in place as JSON Schema (`type: [t, "null"]`)."""
    if isinstance(node, list):
        for item in node:
            nullable_to_type_union(item)
    if not isinstance(node, dict):
        return
    if node.get("nullable") is True and isinstance(node.get("type"), str):
        del node["nullable"]
        node["type"] = [node["type"], "null"]
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
    for value in node.values():
        nullable_to_type_union(value)


# ---------------------------------------------------------------- loading and tightening


def _spec() -> _Spec:
    """The spec at the current spec_path(), loaded once."""
    return _load(spec_path())


@cache
def _load(path: Path) -> _Spec:
    """Read the spec, make it plain JSON Schema, tighten its webhooks and index them."""
    if not path.is_file():
        raise FileNotFoundError(
            f"Telnyx OpenAPI spec not found at {path}: TELNYX_OPENAPI_SPEC names a missing file, or "
            "tests/openapi/call-control.json was deleted (tests/openapi/extract.py rebuilds it)."
        )
    document = json.loads(path.read_text(encoding="utf-8"))
    is_30 = str(document["openapi"]).startswith("3.0")
    if is_30:
        nullable_to_type_union(document)
    dialect, validator_class = (DRAFT4, Draft4Validator) if is_30 else (DRAFT202012, Draft202012Validator)
    registry = Registry().with_resource(SPEC_URI, dialect.create_resource(document))
    webhooks = _index_webhooks(document, registry)
    for ref in set(webhooks.values()):
        _tighten_envelope(_lookup(registry, ref), registry)
    return _Spec(document, registry, validator_class, webhooks)


def _index_webhooks(document: dict[str, Any], registry: Registry) -> dict[str, str]:
    """Map each event_type enum value to the $ref of the webhook's request body schema."""
    index = {}
    for name, item in document.get("webhooks", {}).items():
        for method, operation in item.items():
            schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if not schema:
                continue
            pointer = f"#/webhooks/{_escape(name)}/{method}/requestBody/content/application~1json/schema"
            ref = schema.get("$ref", pointer)
            index.update(dict.fromkeys(_event_type_values(_lookup(registry, ref), registry), ref))
    return index


def _event_type_values(schema: dict[str, Any], registry: Registry) -> list[str]:
    """The event_type enum of an envelope, looking inside `data` when there is one."""
    properties = schema.get("properties", {})
    if "event_type" in properties:
        event_type = _deref(properties["event_type"], registry)
        return list(event_type.get("enum", [event_type["const"]] if "const" in event_type else []))
    if "data" in properties:
        return _event_type_values(_deref(properties["data"], registry), registry)
    return []


def _tighten_envelope(envelope: dict[str, Any], registry: Registry) -> None:
    """Require what every real delivery carries; allow the `meta` block and a null client_state."""
    properties = envelope.get("properties", {})
    if "data" not in properties:
        return
    envelope["required"] = sorted({*envelope.get("required", []), "data"})
    properties.setdefault("meta", META_SCHEMA)
    data = _deref(properties["data"], registry)
    _require(data, ENVELOPE_FIELDS)
    payload = _deref(data.get("properties", {}).get("payload", {}), registry)
    payload_properties = payload.get("properties", {})
    if "call_control_id" in payload_properties:
        _require(payload, CALL_ID_FIELDS)
    client_state = payload_properties.get("client_state", {})
    if client_state.get("type") == "string":
        client_state["type"] = ["string", "null"]


def _require(schema: dict[str, Any], fields: tuple[str, ...]) -> None:
    """Add to a schema's `required` those of fields it declares."""
    declared = [field for field in fields if field in schema.get("properties", {})]
    schema["required"] = sorted({*schema.get("required", []), *declared})


# ---------------------------------------------------------------- refs and validators


def _request_ref(action: str) -> str:
    """The $ref of an action's request schema: from the spec's paths, else the fallback table."""
    name = schema_name_from_paths(action) or FALLBACK_REQUEST_SCHEMAS.get(action)
    if name is None:
        raise KeyError(f"no request schema known for action {action!r}")
    return f"#/components/schemas/{name}"


def _webhook_ref(event_type: str) -> str:
    """The $ref of an event type's envelope schema."""
    try:
        return _spec().webhooks[event_type]
    except KeyError:
        raise KeyError(f"no webhook schema for event_type {event_type!r}") from None


@cache
def _validator(path: Path, ref: str) -> Any:
    """A validator for one schema of the spec at path, with formats checked lightly."""
    spec = _load(path)
    return spec.validator_class({"$ref": SPEC_URI + ref}, registry=spec.registry, format_checker=FORMAT_CHECKER)


def _raise_best(validator: Any, instance: Any) -> None:
    """Raise the most relevant validation error, if any; its path names the offending field."""
    error = best_match(validator.iter_errors(instance))
    if error is not None:
        raise error


@cache
def _inlined(path: Path, ref: str) -> dict[str, Any]:
    """A spec schema with its $refs replaced by their targets (cyclic refs are refused)."""
    registry = _load(path).registry
    return _inline(_lookup(registry, ref), registry, (ref,))


def _inline(node: Any, registry: Registry, seen: tuple[str, ...]) -> Any:
    """Recursively replace $refs in node; `$ref` with siblings becomes an allOf, as in 3.1."""
    if isinstance(node, list):
        return [_inline(item, registry, seen) for item in node]
    if not isinstance(node, dict):
        return node
    inlined = {key: _inline(value, registry, seen) for key, value in node.items() if key != "$ref"}
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return inlined
    if ref in seen:
        raise ValueError(f"cannot inline cyclic $ref {ref}")
    target = _inline(_lookup(registry, ref), registry, (*seen, ref))
    return {"allOf": [target], **inlined} if inlined else target


def _deref(node: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """Follow a chain of $refs to the schema it names."""
    while isinstance(node.get("$ref"), str):
        node = _lookup(registry, node["$ref"])
    return node


def _lookup(registry: Registry, ref: str) -> Any:
    """The spec node a local ref ('#/...') points at."""
    return registry.resolver().lookup(SPEC_URI + ref).contents


def _escape(segment: str) -> str:
    """Escape one JSON pointer segment."""
    return segment.replace("~", "~0").replace("/", "~1")
