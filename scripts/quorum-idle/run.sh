#!/usr/bin/env bash
# Idle cost of quorum queues through the real broker: three warren processes on 127.0.0.1,
# N quorum queues declared through the management API, then each process's CPU (from
# /proc/PID/stat over MEASURE seconds) and RSS after SETTLE seconds idle.
#   scripts/quorum-idle/run.sh [N=1000] [SETTLE=60] [MEASURE=60]
set -euo pipefail
N=${1:-1000}
SETTLE=${2:-60}
MEASURE=${3:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
bin=$work/warren
(cd "$root" && go build -o "$bin" ./cmd/warren)

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
names=(n1 n2 n3)
declare -a amqp api prom cl dbg pids
peers=""
for i in 0 1 2; do
  amqp[$i]=$(freeport); api[$i]=$(freeport); prom[$i]=$(freeport); cl[$i]=$(freeport); dbg[$i]=$(freeport)
  peers+="${peers:+,}${names[$i]}@127.0.0.1:${cl[$i]}"
done
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for i in 0 1 2; do
  mkdir -p "$work/${names[$i]}"
  "$bin" --data-dir "$work/${names[$i]}" --listen "127.0.0.1:${amqp[$i]}" \
    --management-listen "127.0.0.1:${api[$i]}" --prometheus-listen "127.0.0.1:${prom[$i]}" \
    --debug-listen "127.0.0.1:${dbg[$i]}" \
    --node-name "${names[$i]}" --cluster-listen "127.0.0.1:${cl[$i]}" --cluster-peers "$peers" \
    >"$work/${names[$i]}.log" 2>&1 &
  pids[$i]=$!
done
for i in 0 1 2; do
  until curl -sf -u guest:guest "http://127.0.0.1:${api[$i]}/api/warren/cluster" | grep -q '"leader":"n'; do sleep 0.5; done
done
echo "cluster up; declaring $N quorum queues" >&2
start=$(date +%s)
for q in $(seq 1 "$N"); do
  i=$((q % 3))
  curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
    -d '{"durable":true,"arguments":{"x-queue-type":"quorum"}}' \
    "http://127.0.0.1:${api[$i]}/api/queues/%2F/qq-$q" >/dev/null || echo "declare qq-$q failed" >&2
done
echo "declared in $(( $(date +%s) - start )) s; settling ${SETTLE} s" >&2
sleep "$SETTLE"
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
declare -a c0
for i in 0 1 2; do c0[$i]=$(cpu "${pids[$i]}"); done
sleep "$MEASURE"
printf 'node\tCPU%%\tRSS_MiB\tgoroutines\tgroups_led\tqueues_listed\n'
for i in 0 1 2; do
  c1=$(cpu "${pids[$i]}")
  rss=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/${pids[$i]}/status")
  curl -sf "http://127.0.0.1:${dbg[$i]}/debug/pprof/goroutine?debug=1" >"$work/goroutines" || true
  thr=$(awk 'NR == 1 {print $NF}' "$work/goroutines")
  curl -sf "http://127.0.0.1:${prom[$i]}/metrics/per-object" >"$work/metrics" || true
  led=$(grep -c '^warren_raft_member_online{' "$work/metrics" || true)
  nq=$(curl -sf -u guest:guest "http://127.0.0.1:${api[$i]}/api/queues?columns=name" | grep -o '"name"' | wc -l)
  awk -v a="${c0[$i]}" -v b="$c1" -v t="$tck" -v m="$MEASURE" -v n="${names[$i]}" -v r="$rss" -v th="$thr" -v l="$led" -v q="$nq" \
    'BEGIN { printf "%s\t%.1f\t%d\t%s\t%d\t%s\n", n, 100*(b-a)/t/m, r, th, l/2, q }'
done
# What a scrape costs with these groups (after the measurement, so as not to disturb it).
for i in 0 1 2; do
  for path in /metrics /metrics/per-object; do
    curl -sf -o /dev/null -w "${names[$i]} $path: %{time_total} s, %{size_download} bytes\n" "http://127.0.0.1:${prom[$i]}$path" || true
  done
done
uptime
