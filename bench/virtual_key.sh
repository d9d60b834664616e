#!/usr/bin/env bash
# Tollgate through a virtual key: the same placement as bench/run.sh (Tollgate pinned to GW_CPU, the
# load generator and the mock upstream to LOAD_CPU), with calls made through a virtual key that has a
# budget and rate limits, so every call does the key lookup, the rate-limit check, the budget
# reservation and settlement, and is recorded by the spend writer (SQLite, as out of the box).
# Direct-to-mock and the master key are measured in the same run for the ratios.
#
# Usage: bench/virtual_key.sh        (env: DUR (15), CONCS (1,10,50,200), GW_CPU (0), LOAD_CPU (1),
#                                     BENCH_WORKDIR, TOLLGATE_BIN, SKIP_BUILD as for bench/run.sh)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
DUR=${DUR:-15}
CONCS=${CONCS:-1,10,50,200}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MOCK_PORT=18090
GW_PORT=4190
MASTER=sk-bench-vkey-4c1e8a2f9b3d5e7a0c6f1b8d2e4a9c3f

source "$REPO/bench/lib.sh"
bench_setup vkey-run
OUT=$RUN/results.jsonl
require_free_ports $MOCK_PORT $GW_PORT
start_mock $MOCK_PORT
write_config "$RUN/config.yaml" $MOCK_PORT $MASTER
(cd "$RUN" && exec taskset -c "$GW_CPU" "$TOLLGATE_BIN" --config config.yaml --host 127.0.0.1 --port $GW_PORT) \
  > "$RUN/tollgate.log" 2>&1 &
GW_PID=$!
pids+=($GW_PID)
wait_up "http://127.0.0.1:$GW_PORT/health/liveliness" "http://127.0.0.1:$MOCK_PORT/health"

# A key with a budget and limits far above what the run uses: every check runs, none refuses.
KEY=$(curl -sf "http://127.0.0.1:$GW_PORT/key/generate" -H "Authorization: Bearer $MASTER" \
  -H 'content-type: application/json' \
  -d '{"key_alias":"bench","max_budget":1000000,"rpm_limit":100000000,"tpm_limit":100000000000,"max_parallel_requests":100000}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

bench() { # name url [header]
  local name=$1 url=$2; shift 2
  local h=(); [ $# -gt 0 ] && h=(--header "$1")
  local pid=(); [ "$name" != direct ] && pid=(--pid "$GW_PID")
  taskset -c "$LOAD_CPU" python3 "$SHARED/tools/bench.py" --name "$name" --test chat --url "$url" \
    --body "$SHARED/bodies/chat.json" "${pid[@]}" --conc "$CONCS" --duration "$DUR" --wrk-cpus "$LOAD_CPU" "${h[@]}" --out "$OUT"
}
echo "== virtual-key bench $(date -Is), DUR=$DUR CONCS=$CONCS GW_CPU=$GW_CPU LOAD_CPU=$LOAD_CPU"
bench direct "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" "Authorization: Bearer sk-mock"
bench tollgate-master "http://127.0.0.1:$GW_PORT/v1/chat/completions" "Authorization: Bearer $MASTER"
bench tollgate-vkey "http://127.0.0.1:$GW_PORT/v1/chat/completions" "Authorization: Bearer $KEY"

# Every call through the key was recorded and charged: compare the key's spend and the log count.
sleep 1
curl -sf "http://127.0.0.1:$GW_PORT/key/info?key=$KEY" -H "Authorization: Bearer $MASTER" \
  | python3 -c 'import json,sys; i=json.load(sys.stdin)["info"]; print("key spend after the run: $%.6f" % i["spend"])'

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {(r["target"], r["conc"]): r for r in rows}
concs = sorted({r["conc"] for r in rows})
print("\n| conc | direct req/s | master req/s | vkey req/s | vkey p50 (+ vs direct) | vkey p99 (+ vs direct) | vkey peak RSS |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for c in concs:
    d, m, v = by.get(("direct", c)), by.get(("tollgate-master", c)), by.get(("tollgate-vkey", c))
    if not (d and m and v):
        continue
    print(f"| {c} | {d['rps']:,.0f} | {m['rps']:,.0f} | {v['rps']:,.0f} | {v['p50_ms']:.2f} ms (+{v['p50_ms']-d['p50_ms']:.2f}) "
          f"| {v['p99_ms']:.2f} ms (+{v['p99_ms']-d['p99_ms']:.2f}) | {v['peak_rss_mb']:.0f} MB |")
PY
