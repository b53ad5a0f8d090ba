"""The demo's streamed replies: scenarios in scenarios/streamed/ against the LLM brain with `ai.stream` on.

Each such scenario carries `model:`, what the fake OpenAI server (tests/fake_openai.py) writes for each
caller turn: `text`, and optionally `tool` (a decision: transfer, end_call, take_message, not_sure) with
`department`. The fake writes at `TTFT_S` to the first token, then `TOKENS_PER_S`, like a hosted model.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from simulator.network import Network
from simulator.runner import ScenarioResult, run_scenario
from simulator.scenario import SCENARIO_DIR, Scenario, ScenarioError, parse_scenario
from simulator.service import start_service

STREAMED_DIR = SCENARIO_DIR / "streamed"
TTFT_S, TOKENS_PER_S = 0.3, 40.0
TOOLS = ("transfer", "end_call", "take_message", "not_sure")


def load_streamed(path: Path) -> tuple[Scenario, list[dict[str, Any]]]:
    """A scenario and the model's replies for it; ScenarioError names the file and the problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        replies = raw.get("model") if isinstance(raw, dict) else None
        if not isinstance(replies, list) or not all(_reply_ok(reply) for reply in replies):
            raise ScenarioError(f"`model` must list replies with `text` and an optional `tool` of {TOOLS}")
        return parse_scenario(raw, default_name=path.stem), replies
    except (OSError, yaml.YAMLError, ScenarioError, TypeError, ValueError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


def _reply_ok(reply: Any) -> bool:
    return isinstance(reply, dict) and isinstance(reply.get("text", ""), str) and reply.get("tool") in (None, *TOOLS)


def streams(replies: list[dict[str, Any]]) -> list[Any]:
    """The fake server's script for these replies."""
    from fake_openai import Stream, Tool

    def one(reply: dict[str, Any]) -> Any:
        tool = reply.get("tool")
        arguments = {"department": reply["department"]} if reply.get("department") else {}
        parts = [reply["text"]] if reply.get("text") else []
        return Stream(*parts, *([Tool(tool, arguments)] if tool else []), ttft_s=TTFT_S, tokens_per_s=TOKENS_PER_S)

    return [one(reply) for reply in replies]


@contextmanager
def fake_model() -> Iterator[Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from fake_openai import FakeOpenAI

    with FakeOpenAI() as model:
        yield model


def run_streamed_scenarios(network: Network, out: Callable[[str], None] = print) -> list[ScenarioResult]:
    """Every scenario in scenarios/streamed/, one after another, on a service of their own."""
    paths = sorted(STREAMED_DIR.glob("*.yml"))
    if not paths:
        return []
    loaded = [load_streamed(path) for path in paths]
    with fake_model() as model:
        env = {**network.service_env(), "OPENAI_BASE_URL": model.base_url}
        with start_service(env, overrides={"ai.stream": True}) as service:
            out(f"service           {service.url} (gunicorn, LLM brain streamed: ai.stream true; fake model at "
                f"{TTFT_S * 1000:.0f} ms to the first token, then {TOKENS_PER_S:g} tokens/s)\n")
            saved, network.webhook_urls = network.webhook_urls, [service.webhook_url]
            try:
                results = []
                for scenario, replies in loaded:
                    model.reset()
                    model.enqueue(*streams(replies))
                    result = run_scenario(network, scenario, service.call_log_path)
                    out(result.transcript + "\n")
                    results.append(result)
            finally:
                network.webhook_urls = saved
    return results
