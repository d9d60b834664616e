#!/usr/bin/env bash
# Scale-out cost, in one run: a virtual key with a budget and rpm/tpm limits, every call recorded
# in PostgreSQL, served by (1) one instance without Redis, (2) one instance with Redis (budgets
# and limits admitted by one Redis round trip per call), (3) three instances with Redis behind
# nginx (deploy/nginx/tollgate.conf). Gateways and nginx on GW_CPU, load and mock on LOAD_CPU, so
# the three instances share one core: (3) measures the cost of the extra hop and processes, not
# added capacity. Quote the ratios to (1).
#
# Usage: bench/cluster.sh   (env: DUR (8), CONCS ("1 50"), GW_CPU (0), LOAD_CPU (1), PGURL
#                           (postgres://postgres@127.0.0.1:5432/postgres: a database is created
#                           and dropped there), REDIS (redis://127.0.0.1:6379/: keys under a
#                           fresh prefix, deleted after), BENCH_WORKDIR, TOLLGATE_BIN, SKIP_BUILD)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BENCH_WORKDIR=${BENCH_WORKDIR:-$HOME/.cache/tollgate/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}
DUR=${DUR:-8}
CONCS=${CONCS:-"1 50"}
GW_CPU=${GW_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS=${REDIS:-redis://127.0.0.1:6379/}
MOCK_PORT=18099
MASTER=sk-bench-cluster-8e1c3a5b7d9f2a4c6e8b0d1f3a5c7e9b
PREFIX=tollgate-bench-$$
DB=tollgate_bench_$$

source "$REPO/bench/lib.sh"
bench_setup cluster-run
require_free_ports $MOCK_PORT 4201 4202 4210 4211 4212 4213
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "bench: nginx is needed (apt-get install nginx)" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

psql "$PGURL" -qAt -c "CREATE DATABASE \"$DB\"" >/dev/null
DB_URL="${PGURL%/*}/$DB"
cluster_cleanup() {
  bench_cleanup
  [ -f "$RUN/nginx.pid" ] && kill "$(cat "$RUN/nginx.pid")" 2>/dev/null || true
  sleep 0.5
  psql "$PGURL" -qAt -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS" --scan --pattern "$PREFIX:*" | xargs -r redis-cli -u "$REDIS" DEL >/dev/null 2>&1 || true
}
trap cluster_cleanup EXIT

start_mock $MOCK_PORT
write_config "$RUN/config.yaml" $MOCK_PORT $MASTER
start_gw() { # port name [env…]
  local port=$1 name=$2; shift 2
  mkdir -p "$RUN/$name"
  (cd "$RUN/$name" && exec env "$@" TOLLGATE_SPEND_JOURNAL_DIR="$RUN/$name/journal" \
    taskset -c "$GW_CPU" "$TOLLGATE_BIN" --config "$RUN/config.yaml" --host 127.0.0.1 \
    --port "$port" --database-url "$DB_URL") > "$RUN/$name.log" 2>&1 &
  pids+=($!)
}
start_gw 4201 alone
wait_up http://127.0.0.1:4201/health/readiness   # migrates the database once, before the others
start_gw 4202 redis REDIS_URL="$REDIS" TOLLGATE_REDIS_PREFIX="$PREFIX"
for p in 4211 4212 4213; do
  start_gw $p "member-$p" REDIS_URL="$REDIS" TOLLGATE_REDIS_PREFIX="$PREFIX"
done
sed -e 's/listen 80;/listen 127.0.0.1:4210;/' -e 's/127.0.0.1:4001/127.0.0.1:4211/' \
  -e 's/127.0.0.1:4002/127.0.0.1:4212/' -e 's/127.0.0.1:4003/127.0.0.1:4213/' \
  "$REPO/deploy/nginx/tollgate.conf" > "$RUN/site.conf"
mkdir -p "$RUN/nginx-tmp"
cat > "$RUN/nginx.conf" <<CONF
worker_processes 1;
error_log $RUN/nginx-error.log;
pid $RUN/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $RUN/nginx-tmp; proxy_temp_path $RUN/nginx-tmp;
  fastcgi_temp_path $RUN/nginx-tmp; uwsgi_temp_path $RUN/nginx-tmp; scgi_temp_path $RUN/nginx-tmp;
  include $RUN/site.conf;
}
CONF
taskset -c "$GW_CPU" "$NGINX" -p "$RUN" -c "$RUN/nginx.conf" -g "user root;"
wait_up http://127.0.0.1:$MOCK_PORT/health http://127.0.0.1:4202/health/readiness \
  http://127.0.0.1:4211/health/readiness http://127.0.0.1:4212/health/readiness \
  http://127.0.0.1:4213/health/readiness http://127.0.0.1:4210/health/readiness

KEY=$(curl -sf http://127.0.0.1:4201/key/generate -H "Authorization: Bearer $MASTER" \
  -H 'Content-Type: application/json' \
  -d '{"max_budget": 1000000, "rpm_limit": 100000000, "tpm_limit": 1000000000, "models": ["gpt-4o-mini"]}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
export BODY_FILE=$SHARED/bodies/chat.json WRK_HDR1="Authorization: Bearer $KEY"
for port in 4201 4202 4210; do   # warm-up: each instance loads the key
  taskset -c "$LOAD_CPU" wrk -t1 -c10 -d2s -s "$SHARED/wrk/post.lua" "http://127.0.0.1:$port/v1/chat/completions" > /dev/null
done
: > "$RUN/raw.txt"
for c in $CONCS; do
  for target in "alone 4201" "redis 4202" "3-behind-nginx 4210"; do
    set -- $target
    echo "== cluster: $1, concurrency $c"
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$c" -d"${DUR}"s --timeout=10s -s "$SHARED/wrk/post.lua" \
      "http://127.0.0.1:$2/v1/chat/completions" | grep '^JSON ' | cut -c6-)
    echo "$1 $c $out" >> "$RUN/raw.txt"
  done
done
python3 - "$RUN/raw.txt" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    name, conc, js = line.split(" ", 2)
    r = json.loads(js)
    errors = sum(r[k] for k in r if k.startswith("err_"))
    rows[(name, int(conc))] = dict(rps=r["requests"] / (r["duration_us"] / 1e6), p50=r["p50_us"] / 1e3,
                                   p99=r["p99_us"] / 1e3, errors=errors)
print("| target | conc | req/s | p50 ms | p99 ms | req/s vs one instance without Redis | +p50 vs it | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for (name, conc), v in sorted(rows.items(), key=lambda kv: (kv[0][1], ["alone", "redis", "3-behind-nginx"].index(kv[0][0]))):
    base = rows[("alone", conc)]
    print(f"| {name} | {conc} | {v['rps']:,.0f} | {v['p50']:.3f} | {v['p99']:.3f} | {v['rps'] / base['rps']:.2f} | {v['p50'] - base['p50']:+.3f} | {v['errors']} |")
PY
