"""Hand-written request checks for the Call Control actions the service uses, mirroring the official schema.

Each action lists its fields as `name: rule`. A rule is a JSON type ("string", "integer", "boolean",
"object", "array", "string|integer", or "uuid" for a string in UUID format), optionally followed by
allowed values after "=" (separated by "|") or a range "integer[lo..hi]" / "string[lo..hi]" (length).
Nested objects are only checked for being objects or arrays; tests/simulator/test_spec.py proves these
tables agree with the spec.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

MISSING_PARAMETER = "10004"
BAD_REQUEST = "10015"
BAD_ENUM = "10032"
OUT_OF_RANGE = "10033"

SPEAK_LANGUAGES = (
    "arb|cmn-CN|cy-GB|da-DK|de-DE|en-AU|en-GB|en-GB-WLS|en-IN|en-US|es-ES|es-MX|es-US|fr-CA|fr-FR|hi-IN|is-IS|"
    "it-IT|ja-JP|ko-KR|nb-NO|nl-NL|pl-PL|pt-BR|pt-PT|ro-RO|ru-RU|sv-SE|tr-TR"
)
# TranscriptionLanguage: what record_start's transcription_language accepts.
RECORDING_TRANSCRIPTION_LANGUAGES = (
    "af|af-ZA|am|am-ET|ar|ar-AE|ar-BH|ar-DZ|ar-EG|ar-IL|ar-IQ|ar-JO|ar-KW|ar-LB|ar-MA|ar-MR|ar-OM|ar-PS|ar-QA|"
    "ar-SA|ar-TN|ar-YE|as|auto_detect|az|az-AZ|ba|be|bg|bg-BG|bn|bn-BD|bn-IN|bo|br|bs|bs-BA|ca|ca-ES|cs|cs-CZ|cy|"
    "da|da-DK|de|de-AT|de-CH|de-DE|el|el-GR|en|en-AU|en-CA|en-GB|en-GH|en-HK|en-IE|en-IN|en-KE|en-NG|en-NZ|en-PH|"
    "en-PK|en-SG|en-TZ|en-US|en-ZA|es|es-419|es-AR|es-BO|es-CL|es-CO|es-CR|es-DO|es-EC|es-ES|es-GT|es-HN|es-MX|"
    "es-NI|es-PA|es-PE|es-PR|es-PY|es-SV|es-US|es-UY|es-VE|et|et-EE|eu|eu-ES|fa|fa-IR|fi|fi-FI|fil-PH|fo|fr|fr-BE|"
    "fr-CA|fr-CH|fr-FR|gl|gl-ES|gu|gu-IN|ha|haw|he|hi|hi-IN|hr|hr-HR|ht|hu|hu-HU|hy|hy-AM|id|id-ID|is|is-IS|it|"
    "it-CH|it-IT|iw-IL|ja|ja-JP|jv-ID|jw|ka|ka-GE|kk|kk-KZ|km|km-KH|kn|kn-IN|ko|ko-KR|la|lb|ln|lo|lo-LA|lt|lt-LT|"
    "lv|lv-LV|mg|mi|mk|mk-MK|ml|ml-IN|mn|mn-MN|mr|mr-IN|ms|ms-MY|mt|my|my-MM|ne|ne-NP|nl|nl-BE|nl-NL|nn|no|no-NO|"
    "oc|pa|pa-Guru-IN|pl|pl-PL|ps|pt|pt-BR|pt-PT|ro|ro-RO|ru|ru-RU|rw-RW|sa|sd|si|si-LK|sk|sk-SK|sl|sl-SI|sn|so|"
    "sq|sq-AL|sr|sr-RS|ss-latn-za|st-ZA|su|su-ID|sv|sv-SE|sw|sw-KE|sw-TZ|ta|ta-IN|ta-LK|ta-MY|ta-SG|te|te-IN|tg|"
    "th|th-TH|tk|tl|tn-latn-za|tr|tr-TR|ts-ZA|tt|uk|uk-UA|ur|ur-IN|ur-PK|uz|uz-UZ|ve-ZA|vi|vi-VN|xh-ZA|yi|yo|"
    "yue-Hant-HK|zh|zh-TW|zu-ZA"
)
TRANSCRIPTION_ENGINES = "Google|Telnyx|Deepgram|Azure|xAI|AssemblyAI|Speechmatics|Soniox|Parakeet|A|B"

COMMON = {"client_state": "string", "command_id": "string"}
RECORDING = {
    "record": "string=record-from-answer",
    "record_channels": "string=single|dual",
    "record_custom_file_name": "string[1..40]",
    "record_format": "string=wav|mp3",
    "record_max_length": "integer",
    "record_timeout_secs": "integer",
    "record_track": "string=both|inbound|outbound",
    "record_trim": "string=trim-silence",
}
WEBHOOK_ROUTING = {
    "webhook_url": "string",
    "webhook_url_method": "string=POST|GET",
    "webhook_urls": "object",
    "webhook_urls_method": "string=POST|GET",
    "webhook_retries_policies": "object",
    "custom_headers": "array",
    "sip_headers": "array",
    "sound_modifications": "object",
}

ACTIONS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "answer": ((), {
        **COMMON, **RECORDING, **WEBHOOK_ROUTING,
        "assistant": "object", "billing_group_id": "uuid", "conversation_relay_config": "object",
        "deepfake_detection": "object",
        "preferred_codecs": "string=G722,PCMU,PCMA,G729,OPUS,VP8,H264",  # sic: the spec's enum has this one value
        "send_silence_when_idle": "boolean",
        "stream_bidirectional_codec": "string=PCMU|PCMA|G722|OPUS|AMR-WB|L16",
        "stream_bidirectional_mode": "string=mp3|rtp",
        "stream_bidirectional_target_legs": "string=both|self|opposite",
        "stream_codec": "string=PCMU|PCMA|G722|OPUS|AMR-WB|L16|default",
        "stream_track": "string=inbound_track|outbound_track|both_tracks",
        "stream_url": "string", "transcription": "boolean", "transcription_config": "object",
    }),
    "reject": (("cause",), {**COMMON, "cause": "string=CALL_REJECTED|USER_BUSY"}),
    "hangup": ((), {**COMMON, "custom_headers": "array"}),
    "speak": (("payload", "voice"), {
        **COMMON, "payload": "string", "voice": "string", "language": "string=" + SPEAK_LANGUAGES,
        "loop": "string|integer", "payload_type": "string=text|ssml", "service_level": "string=basic|premium",
        "stop": "string", "target_legs": "string=self|opposite|both", "voice_settings": "object",
    }),
    "transcription_start": ((), {
        **COMMON, "transcription_engine": "string=" + TRANSCRIPTION_ENGINES,
        "transcription_engine_config": "object", "transcription_tracks": "string",
    }),
    "transcription_stop": ((), dict(COMMON)),
    "record_start": (("format", "channels"), {
        **COMMON, "format": "string=wav|mp3", "channels": "string=single|dual", "custom_file_name": "string[1..40]",
        "max_length": "integer", "play_beep": "boolean", "recording_track": "string=both|inbound|outbound",
        "timeout_secs": "integer", "transcription": "boolean",
        "transcription_engine": "string=A|B|deepgram/nova-3",
        "transcription_language": "string=" + RECORDING_TRANSCRIPTION_LANGUAGES,
        "transcription_max_speaker_count": "integer", "transcription_min_speaker_count": "integer",
        "transcription_profanity_filter": "boolean", "transcription_speaker_diarization": "boolean",
        "trim": "string=trim-silence",
    }),
    "record_stop": ((), {**COMMON, "recording_id": "uuid"}),
    "playback_stop": ((), {**COMMON, "overlay": "boolean", "stop": "string"}),
    "transfer": (("to",), {
        **COMMON, **RECORDING, **WEBHOOK_ROUTING,
        "to": "string", "from": "string", "from_display_name": "string", "target_leg_client_state": "string",
        "timeout_secs": "integer", "time_limit_secs": "integer[30..14400]",
        "answering_machine_detection": "string=premium|detect|detect_beep|detect_words|greeting_end|disabled",
        "answering_machine_detection_config": "object", "audio_url": "string", "media_name": "string",
        "early_media": "boolean", "media_encryption": "string=disabled|SRTP|DTLS",
        "mute_dtmf": "string=none|both|self|opposite", "park_after_unbridge": "string", "preferred_codecs": "string",
        "privacy": "string=id|none", "send_digits_on_answer": "string", "sip_auth_password": "string",
        "sip_auth_username": "string", "sip_region": "string=US|Europe|Canada|Australia|Middle East",
        "sip_transport_protocol": "string=UDP|TCP|TLS",
    }),
}


@dataclass(frozen=True)
class Problem:
    """Why a body was rejected, in Telnyx's error vocabulary."""

    code: str
    title: str
    detail: str
    pointer: str


def validate(action: str, body: Any) -> Problem | None:
    """The first problem Telnyx would report for this body, or None when it is acceptable."""
    required, fields = ACTIONS[action]
    if not isinstance(body, dict):
        return Problem(BAD_REQUEST, "Invalid request body", "The request body must be a JSON object.", "")
    for name in required:
        if name not in body:
            return Problem(MISSING_PARAMETER, "Missing required parameter", f"The '{name}' parameter is required.",
                           f"/{name}")
    for name, value in body.items():
        rule = fields.get(name)
        problem = check_field(name, value, rule) if rule else None
        if problem:
            return problem
    return None


def check_field(name: str, value: Any, rule: str) -> Problem | None:
    """Check one value against its rule: type first, then allowed values, then range."""
    kind, _, allowed = rule.partition("=")
    kind, _, bounds = kind.partition("[")
    if not any(_is_type(value, t) for t in kind.split("|")):
        return Problem(BAD_REQUEST, "Invalid parameter type", f"'{name}' must be of type {kind}.", f"/{name}")
    if allowed and value not in allowed.split("|"):
        return Problem(BAD_ENUM, "Invalid value", f"'{name}' must be one of: {allowed.replace('|', ', ')}.", f"/{name}")
    if bounds and not _within(value, bounds.rstrip("]")):
        return Problem(OUT_OF_RANGE, "Value out of range", f"'{name}' must be within [{bounds}.", f"/{name}")
    return None


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":  # JSON Schema 2020-12: 3.0 is an integer, True is not
        return not isinstance(value, bool) and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        )
    if kind == "uuid":
        return isinstance(value, str) and _is_uuid(value)
    types = {"string": str, "boolean": bool, "object": dict, "array": list}
    return isinstance(value, types[kind])


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _within(value: Any, bounds: str) -> bool:
    low, high = (int(x) for x in bounds.split(".."))
    measured = len(value) if isinstance(value, str) else value
    return low <= measured <= high
