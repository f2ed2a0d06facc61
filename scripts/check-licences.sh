#!/usr/bin/env bash
# Every published crate of the workspace (all but `publish = false`) is MIT OR
# Apache-2.0 and reaches no LGPL or GPL crate through its normal and build
# dependencies, with every feature of the workspace on. Dev-dependencies (btf-rs, the
# test oracle of the library's own BTF reader) are not shipped and are not counted.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import json, re, subprocess, sys
meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--quiet", "--all-features"]))
pkgs = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
allowed = "MIT OR Apache-2.0"
copyleft = re.compile(r"\b(A?GPL|LGPL)")

def permissive_alternative(lic):
    # "MIT OR LGPL-2.1" may be taken as MIT: a copyleft licence only counts when
    # every alternative of the expression is copyleft.
    return any(not copyleft.search(alt) for alt in re.split(r"\s+OR\s+|/", lic or ""))

failed, published = False, []
for mid in meta["workspace_members"]:
    p = pkgs[mid]
    if p.get("publish") == []:
        continue
    published.append(p["name"])
    if p.get("license") != allowed:
        print(f"{p['name']}: licence {p.get('license')!r}, expected {allowed!r}")
        failed = True
    seen, stack, path = set(), [mid], {mid: [p["name"]]}
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        for dep in nodes[cur]["deps"]:
            if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                path.setdefault(dep["pkg"], path[cur] + [pkgs[dep["pkg"]]["name"]])
                stack.append(dep["pkg"])
    for i in sorted(seen, key=lambda i: pkgs[i]["name"]):
        lic = pkgs[i].get("license")
        if lic is None:
            print(f"{p['name']} reaches {pkgs[i]['name']}, which states no licence "
                  f"({' -> '.join(path[i])})")
            failed = True
        elif copyleft.search(lic) and not permissive_alternative(lic):
            print(f"{p['name']} reaches {pkgs[i]['name']} ({lic}): "
                  f"{' -> '.join(path[i])}")
            failed = True
if failed:
    sys.exit(1)
print(f"licences: {', '.join(sorted(published))}: MIT OR Apache-2.0, no (L)GPL crate "
      "reachable with every feature on")
PY
