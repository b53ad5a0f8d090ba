"""Cut the part of Telnyx's Call Control OpenAPI spec that the tests check against, and write it here.

The tests validate every command body the service sends and every webhook fixture against Telnyx's own
schemas (`tests/spec.py`). They need only the `/calls/{call_control_id}/actions/...` request bodies, the
`webhooks` section and the component schemas those reference, so that subset is kept in the repository
(`call-control.json` beside this file) and a clone needs nothing outside it.

Source: `openapi/spec3.yml` in the public repository team-telnyx/openapi, as JSON. To refresh, convert a
newer spec3.yml to JSON (or take the Call Control extract of it) and run, from the repository root:

    .venv/bin/python tests/openapi/extract.py path/to/spec.json [--commit <source commit>]

Schemas are copied unchanged; only paths and operations the tests do not read are left out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET = HERE / "call-control.json"
ACTION_PREFIX = "/calls/{call_control_id}/actions/"
SCHEMA_PREFIX = "#/components/schemas/"


def subset(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with only the action request bodies, the webhooks and the schemas they reference."""
    paths = {
        path: {"post": {"operationId": item["post"].get("operationId"), "requestBody": item["post"]["requestBody"]}}
        for path, item in spec["paths"].items()
        if path.startswith(ACTION_PREFIX) and "requestBody" in item.get("post", {})
    }
    kept = {"paths": paths, "webhooks": spec.get("webhooks", {})}
    schemas = spec["components"]["schemas"]
    names = _referenced(kept, schemas)
    return {
        "openapi": spec["openapi"],
        "info": spec.get("info", {}),
        **kept,
        "components": {"schemas": {name: schemas[name] for name in sorted(names)}},
    }


def _referenced(node: Any, schemas: dict[str, Any]) -> set[str]:
    """Every component schema name reachable from node through $refs."""
    found: set[str] = set()
    todo = [node]
    while todo:
        current = todo.pop()
        if isinstance(current, list):
            todo.extend(current)
        elif isinstance(current, dict):
            ref = current.get("$ref")
            if isinstance(ref, str) and ref.startswith(SCHEMA_PREFIX):
                name = ref.removeprefix(SCHEMA_PREFIX)
                if name not in found:
                    found.add(name)
                    todo.append(schemas[name])
            todo.extend(value for key, value in current.items() if key != "$ref")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="the full spec (or its Call Control extract) as JSON")
    parser.add_argument("--commit", default="", help="the team-telnyx/openapi commit it was taken from")
    args = parser.parse_args()
    document = subset(json.loads(args.spec.read_text(encoding="utf-8")))
    if args.commit:
        document["info"] = {**document["info"], "x-source-commit": args.commit}
    TARGET.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    counts = len(document["paths"]), len(document["webhooks"]), len(document["components"]["schemas"])
    print(f"wrote {TARGET}: {counts[0]} actions, {counts[1]} webhooks, {counts[2]} schemas")  # noqa: T201


if __name__ == "__main__":
    main()
