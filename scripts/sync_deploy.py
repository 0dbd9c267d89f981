"""Copies envoy.yaml's filter configuration into deploy/ (each file keeps its own JWKS cluster
name and everything else around the configuration). Run after changing envoy.yaml's filter
configuration; tests/test_deploy.py checks that the files agree.

    .venv/bin/python scripts/sync_deploy.py
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def shipped() -> dict:
    cfg = yaml.safe_load((ROOT / "envoy.yaml").read_text())
    for listener in cfg["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                for http_filter in f["typed_config"].get("http_filters", []):
                    if http_filter["name"] == "envoy.filters.http.wasm":
                        return json.loads(http_filter["typed_config"]["config"]["configuration"]["value"])
    raise SystemExit("envoy.yaml has no wasm filter")


def replace_block(text: str, key: str, config: dict) -> str:
    """Replaces the YAML mapping under the line `<indent>key:` with `config`."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = re.match(rf"^(\s*){re.escape(key)}:\s*$", line)
        if not m:
            continue
        indent = len(m.group(1))
        end = i + 1
        while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
            end += 1
        cluster = yaml.safe_load("".join(lines[i:end]))[key]["jwks"]["cluster"]
        ours = json.loads(json.dumps(config))
        ours["jwks"]["cluster"] = cluster
        body = yaml.safe_dump(ours, sort_keys=False, default_flow_style=False, width=1000)
        body = "".join(" " * (indent + 2) + l + "\n" for l in body.splitlines())
        return "".join(lines[: i + 1]) + body + "".join(lines[end:])
    raise SystemExit(f"no `{key}:` block")


def replace_json_value(text: str, config: dict) -> str:
    """Replaces the JSON text under `value: |` (the plain-Envoy file), keeping its cluster."""
    m = re.search(r"^(\s*)value: \|\n((?:\1  .*\n|\s*\n)+)", text, flags=re.M)
    if not m:
        raise SystemExit("no `value: |` block")
    cluster = json.loads(m.group(2))["jwks"]["cluster"]
    if cluster != config["jwks"]["cluster"]:
        raise SystemExit("deploy/envoy/envoy.yaml names another JWKS cluster than envoy.yaml")
    # The same text as envoy.yaml's, byte for byte (the Envoy files are compared whole).
    shipped_text = (ROOT / "envoy.yaml").read_text()
    src = re.search(r"^(\s*)value: \|\n((?:\1  .*\n|\s*\n)+)", shipped_text, flags=re.M)
    if not src or src.group(1) != m.group(1):
        raise SystemExit("envoy.yaml's configuration block is not where it was expected")
    return text[: m.start(2)] + src.group(2) + text[m.end(2):]


def main() -> int:
    config = shipped()
    files = {
        ROOT / "deploy/istio/wasmplugin.yaml": lambda t: replace_block(t, "pluginConfig", config),
        ROOT / "deploy/envoy-gateway/extension-policy.yaml": lambda t: replace_block(t, "config", config),
        ROOT / "deploy/envoy/envoy.yaml": lambda t: replace_json_value(t, config),
    }
    for path, rewrite in files.items():
        path.write_text(rewrite(path.read_text()))
        print(f"synced {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
