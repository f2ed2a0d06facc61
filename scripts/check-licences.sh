#!/usr/bin/env bash
# The core and the backends stay MIT OR Apache-2.0 and must not reach LGPL code:
# btf-rs may only be a dependency of the harness (the `mapwalk` package).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import json, subprocess, sys
meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--quiet"]))
pkgs = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
members = set(meta["workspace_members"])
allowed_licence = "MIT OR Apache-2.0"
failed = False
for mid in members:
    p = pkgs[mid]
    if p["name"] in ("mapwalk-core",) or p["manifest_path"].split("/")[-3:-1][0] == "backends":
        if p.get("license") != allowed_licence:
            print(f"{p['name']}: licence {p.get('license')!r}, expected {allowed_licence!r}")
            failed = True
    # Everything reachable through normal (non-dev) dependencies.
    seen, stack = set(), [mid]
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        for dep in nodes[cur]["deps"]:
            if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                stack.append(dep["pkg"])
    reach = {pkgs[i]["name"] for i in seen}
    if "btf-rs" in reach and p["name"] != "mapwalk":
        print(f"{p['name']} reaches btf-rs (LGPL): only the harness may")
        failed = True
    lgpl = sorted(pkgs[i]["name"] for i in seen
                  if "LGPL" in (pkgs[i].get("license") or "") and i != mid)
    if lgpl and p["name"] not in ("mapwalk",):
        print(f"{p['name']} reaches LGPL crates: {lgpl}")
        failed = True
if failed:
    sys.exit(1)
print("licences: core and backends are MIT OR Apache-2.0; LGPL code only in the harness")
PY
