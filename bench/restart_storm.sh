#!/bin/bash
set -euo pipefail
# Restart the local 3-node ensemble (conf/) of the checkout CODE_DIR on a copy of DATA_DIR
# (a data/ directory of an earlier run, stopped), watch it for 8 s, and count from the
# nodes' logs: lease lapses (leader_lost events past the three at start), elections
# (term rises), and per node (applied at load, seconds to load, term).
# Usage: bench/restart_storm.sh CODE_DIR DATA_DIR   (issue #13; BENCHMARKS.md, "A restarted ensemble")
CODE=$1; DATA=$(realpath "$2")
cd $CODE
rm -rf data; cp -a "$DATA" data
t=$(date +%T)
bin/zkctl up >/dev/null
for i in $(seq 8); do sleep 1; done
bin/zkctl down >/dev/null
python - "$t" <<'PY'
import json, sys, glob
t = sys.argv[1]
lost = 0; terms = []; loaded = []
for f in glob.glob("data/node*/zknode.log"):
    for line in open(f):
        if not line.startswith("{"): continue
        r = json.loads(line)
        if r["timestamp"][11:19] < t: continue
        if r["event"] == "leader_lost": lost += 1
        if r["event"] == "role": terms.append(r["term"])
        if r["event"] == "state_loaded": loaded.append((r.get("applied"), r["seconds"], r["term"]))
start = min(l[2] for l in loaded)
print(f"lease_lapses={lost - 3} elections={max(terms) - start} loaded={sorted(loaded)}")
PY
