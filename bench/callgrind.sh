#!/usr/bin/env bash
# Instructions per call, counted by valgrind's callgrind: unlike req/s on a shared 2-core VM, the
# count does not move with what else the machine is doing, so an A/B of two binaries is exact.
# For each binary (TOLLGATE_BIN, and BASE_BIN when given) Tollgate runs under callgrind with
# instrumentation off; after WARMUP calls through a virtual key (a budget, rpm/tpm and parallel
# limits, every call recorded in SQLite) it is switched on for CALLS more calls (one client,
# keep-alive, sequential), then off after the spend writer has committed them. Prints instructions
# per call and the functions with the most instructions (inclusive, from callgrind_annotate).
# Needs valgrind (Debian's package). Loopback only; about a minute per binary.
#
# KEY_USER=<id> makes the key an internal user's (created first) instead of nobody's; STREAM=1
# makes every call a streamed answer of CHUNKS (50) chunks (the count is then per stream).
#
# Usage: bench/callgrind.sh   (env: CALLS (2000), WARMUP (300), BASE_BIN, TOP (25), KEY_USER,
#                              BENCH_WORKDIR, TOLLGATE_BIN, SKIP_BUILD as for bench/run.sh)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
CALLS=${CALLS:-2000}
KEY_USER=${KEY_USER:-}
STREAM=${STREAM:-}
CHUNKS=${CHUNKS:-50}
WARMUP=${WARMUP:-300}
TOP=${TOP:-25}
LOAD_CPU=${LOAD_CPU:-1}
MOCK_PORT=18110
GW_PORT=4199
MASTER=sk-bench-callgrind-5b7d9f1a3c5e7a9b1d3f5a7c9e1b3d5f

command -v valgrind >/dev/null && command -v callgrind_control >/dev/null \
  || { echo "callgrind.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
source "$REPO/bench/lib.sh"
bench_setup callgrind-run
require_free_ports $MOCK_PORT $GW_PORT
MOCK_CHUNKS=$CHUNKS start_mock $MOCK_PORT
BODY=$SHARED/bodies/chat.json
[ -n "$STREAM" ] && BODY=$SHARED/bodies/chat_stream.json
write_config "$RUN/config.yaml" $MOCK_PORT $MASTER
wait_up http://127.0.0.1:$MOCK_PORT/health

# calls N KEY: N sequential chat calls on one keep-alive connection; fails on any non-200.
calls() {
  taskset -c "$LOAD_CPU" python3 - "$1" "$2" "$GW_PORT" "$BODY" <<'PY'
import http.client, sys
n, key, port, body = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), open(sys.argv[4], "rb").read()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
h = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
for i in range(n):
    c.request("POST", "/v1/chat/completions", body, h)
    r = c.getresponse(); r.read()
    if r.status != 200:
        sys.exit(f"call {i}: HTTP {r.status}")
PY
}

measure() { # name binary
  local name=$1 bin=$2 out=$RUN/callgrind.$1.out
  rm -f "$RUN/$name.db"*
  (cd "$RUN" && exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
    "$bin" --config "$RUN/config.yaml" --host 127.0.0.1 --port $GW_PORT \
    --database-url "sqlite:$RUN/$name.db") > "$RUN/$name.log" 2>&1 &
  local vg=$!
  pids+=($vg)
  local i
  for i in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$GW_PORT/health/readiness" >/dev/null 2>&1 && break
    sleep 0.2
  done
  local key owner=""
  if [ -n "$KEY_USER" ]; then
    curl -sf -o /dev/null "http://127.0.0.1:$GW_PORT/user/new" -H "Authorization: Bearer $MASTER" \
      -H 'content-type: application/json' -d "{\"user_id\":\"$KEY_USER\",\"user_role\":\"internal_user\"}"
    owner="\"user_id\":\"$KEY_USER\","
  fi
  key=$(curl -sf "http://127.0.0.1:$GW_PORT/key/generate" -H "Authorization: Bearer $MASTER" \
    -H 'content-type: application/json' \
    -d "{$owner\"max_budget\":1000000,\"rpm_limit\":100000000,\"tpm_limit\":100000000000,\"max_parallel_requests\":100000}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  calls "$WARMUP" "$key"
  sleep 2
  callgrind_control -i on "$vg" >/dev/null
  calls "$CALLS" "$key"
  # The spend writer commits on its tick: let it, so the recording is counted too.
  sleep 2
  callgrind_control -i off "$vg" >/dev/null
  callgrind_control -d "$vg" >/dev/null
  kill -TERM "$vg"; wait "$vg" 2>/dev/null || true
  # The largest dump holds the measured calls (the one written at exit has almost nothing).
  local dump ir
  dump=$(ls -S "$out"* | awk 'NR == 1')
  ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen {gsub(",", "", $1); print $1; seen = 1}')
  [ -n "$ir" ] || { echo "callgrind.sh: no totals in $dump" >&2; exit 1; }
  echo "$name $ir" >> "$RUN/totals.txt"
  echo
  echo "### $name: $(python3 -c "print(f'{$ir / $CALLS:,.0f}')") instructions per call ($CALLS calls, $(python3 -c "print(f'{$ir:,}')") in all)"
  echo
  echo '```'
  # Self cost (what each function does itself), the most first; awk, not head, so that no
  # writer is cut off mid-pipe (pipefail).
  callgrind_annotate "$dump" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | awk -v n="$TOP" 'NR <= n' \
    | sed -E 's/ \[[^]]*\]$//' | cut -c1-160
  echo '```'
}

echo "== callgrind $(date -Is): $CALLS calls after $WARMUP, one client"
measure new "$TOLLGATE_BIN"
if [ -n "${BASE_BIN:-}" ]; then
  measure base "$BASE_BIN"
  python3 - "$RUN/totals.txt" <<'PY'
import sys
t = dict(l.split() for l in open(sys.argv[1]))
print(f"\nnew / base instructions: {int(t['new']) / int(t['base']):.3f}")
PY
fi
