"""ops/alerts.yml: promtool accepts the rules, and every rule's unit test in ops/alerts_test.yml passes.

Each rule has tests that must fire it and healthy series that must not; the metric names the rules read are
the ones metrics.py exports.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client import REGISTRY
from system_tools import PROMTOOL

import metrics

OPS = Path(__file__).resolve().parent.parent / "ops"
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load((OPS / "alerts.yml").read_text())["groups"] for rule in group["rules"]]


def promtool(*args: str) -> subprocess.CompletedProcess:
    (binary,) = PROMTOOL.paths_or_skip()
    return subprocess.run([binary, *args], cwd=OPS, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_unit_test_passes():
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_test_that_fires_it_and_one_that_stays_quiet():
    tests = yaml.safe_load((OPS / "alerts_test.yml").read_text())["tests"]
    fired, quiet = set(), set()
    for test in tests:
        for case in test["alert_rule_test"]:
            (fired if case["exp_alerts"] else quiet).add(case["alertname"])
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts == fired == quiet


def test_the_rules_read_only_metrics_the_service_exports():
    exported = {metric.name for metric in REGISTRY.collect()} | set(metrics.SHARED_GAUGES)
    read = {name for rule in rules() for name in re.findall(r"\breceptionist_[a-z_]+\b", rule["expr"])}
    unknown = {name for name in read if _base(name) not in exported}
    assert read and unknown == set()


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in {m.name for m in REGISTRY.collect()}:
            return name.removesuffix(suffix)
    return name
