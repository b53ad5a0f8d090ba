"""`make demo-serve`: the service left running prints where the page is, and each line read places a call."""

from __future__ import annotations

import requests

from simulator.demo import serve_calls
from simulator.network import Network, NetworkOptions
from simulator.scenario import all_scenario_paths, load_scenario
from simulator.service import start_service

TOKEN = "demo-serve-token-0123456789"


def test_each_line_places_a_call_and_the_switch_reaches_it():
    scenarios = [load_scenario(path) for path in all_scenario_paths()]
    lines: list[str] = []
    with Network(NetworkOptions(speed=0.05)) as network, \
            start_service({**network.service_env(), "ADMIN_TOKEN": TOKEN}) as service:
        network.webhook_url = service.webhook_url
        serve_calls(network, service, TOKEN, scenarios, lines.append, ["\n", "no_such_scenario\n"])
        requests.post(f"{service.url}/admin/ai", json={"enabled": False},
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).raise_for_status()
        serve_calls(network, service, TOKEN, scenarios, lines.append, ["asks_for_person\n"])
        metrics = requests.get(f"{service.url}/metrics", timeout=5).text
    text = "\n".join(lines)
    assert f"{service.url}/admin" in text and TOKEN in text and f"curl {service.url}/metrics" in text
    assert "=== question_answered" in text and "no scenario 'no_such_scenario'" in text
    after_off = text.split("=== asks_for_person")[1]
    assert "transcription_start" not in after_off and "transfer to" in after_off
    assert "receptionist_calls_total{outcome=\"resolved\"} 1.0" in metrics
    assert "receptionist_ai_enabled 0.0" in metrics
