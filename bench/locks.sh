#!/usr/bin/env bash
# Lock contention at c=200, as futex calls: Tollgate on both cores (GW_CPUS, so its scheduler runs
# two workers at once, the most contention this machine can show), wrk and the mock on LOAD_CPU,
# every call through one virtual key (a model list, a budget, rpm/tpm and parallel limits: every
# check runs on the same key's counters), every call recorded in SQLite. While the load runs,
# `perf record` samples every futex system call with its call graph for WINDOW seconds;
# bench/tools/futex_sites.py sorts them by what made them: glibc's malloc arena locks, std's
# Mutex / RwLock (by the Tollgate function that took it), channel and thread wake-ups. An
# uncontended lock makes no system call, so the figure per 1000 calls is the contention itself.
# GW_ENV sets environment for Tollgate (e.g. GW_ENV=GLIBC_TUNABLES=glibc.malloc.tcache_count=2000).
# Needs perf (Debian's linux-perf). Loopback only; about 30 seconds.
#
# Usage: bench/locks.sh   (env: CONC (200), DUR (12), WINDOW (4), GW_CPUS (0,1), LOAD_CPU (1),
#                          TOP (20), GW_ENV, BENCH_WORKDIR, TOLLGATE_BIN, SKIP_BUILD as for
#                          bench/run.sh)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
CONC=${CONC:-200}
DUR=${DUR:-12}
WINDOW=${WINDOW:-4}
GW_CPUS=${GW_CPUS:-0,1}
LOAD_CPU=${LOAD_CPU:-1}
TOP=${TOP:-20}
GW_ENV=${GW_ENV:-}
MOCK_PORT=18120
GW_PORT=4197
MASTER=sk-bench-locks-7c1e3b5d9f2a4c6e8b0d2f4a6c8e0b2d

command -v perf >/dev/null || { echo "locks.sh: needs perf (apt-get install linux-perf)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "locks.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
source "$REPO/bench/lib.sh"
bench_setup locks
require_free_ports $MOCK_PORT $GW_PORT
start_mock $MOCK_PORT
write_config "$RUN/config.yaml" $MOCK_PORT $MASTER
# shellcheck disable=SC2086 # GW_ENV is a list of NAME=value words
(cd "$RUN" && exec env $GW_ENV taskset -c "$GW_CPUS" "$TOLLGATE_BIN" --config config.yaml \
  --host 127.0.0.1 --port $GW_PORT) > "$RUN/tollgate.log" 2>&1 &
GW_PID=$!
pids+=($GW_PID)
wait_up "http://127.0.0.1:$GW_PORT/health/liveliness" "http://127.0.0.1:$MOCK_PORT/health"
KEY=$(limited_key "http://127.0.0.1:$GW_PORT" "$MASTER" locks)

echo "== locks $(date -Is): c=$CONC for ${DUR}s, perf for ${WINDOW}s, Tollgate on CPUs $GW_CPUS ${GW_ENV:+($GW_ENV)}"
BODY_FILE=$SHARED/bodies/chat.json WRK_HDR1="Authorization: Bearer $KEY" taskset -c "$LOAD_CPU" \
  wrk -t1 -c"$CONC" -d"${DUR}s" --timeout=10s -s "$SHARED/wrk/post.lua" \
  "http://127.0.0.1:$GW_PORT/v1/chat/completions" > "$RUN/wrk.txt" &
WRK=$!
sleep $(( (DUR - WINDOW) / 2 ))
perf record -q -e syscalls:sys_enter_futex --call-graph dwarf,8192 -p "$GW_PID" \
  -o "$RUN/futex.data" -- sleep "$WINDOW" > "$RUN/perf.log" 2>&1
wait $WRK
line=$(grep '^JSON ' "$RUN/wrk.txt" | cut -c6-)
read -r rps errors < <(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); e=sum(v for k,v in j.items() if k.startswith("err_")); print(j["requests"]/j["duration_us"]*1e6, e)' "$line")
printf 'req/s %.0f, errors %s\n\n' "$rps" "$errors"
perf script -i "$RUN/futex.data" 2>/dev/null > "$RUN/futex.txt"
python3 "$REPO/bench/tools/futex_sites.py" "$RUN/futex.txt" "$(python3 -c "print($rps * $WINDOW)")" "$TOP"
