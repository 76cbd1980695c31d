#!/usr/bin/env bash
# Heap bytes a relayed call keeps, from a heap profile: the figure RSS per call (media.sh)
# cannot settle, because RSS also moves with the allocator's arenas and a run's noise.
#
# For each N in CALLS, switchboard runs under heaptrack with the call harness's config
# (benches/load/common.sh): SIPp on 127.0.0.3 (a trunk) sets up N calls to extension 2001
# (a SIPp callee echoing RTP) at 20 calls/s and streams a μ-law tone in each; once all N
# are up the calls hold a few seconds more and end. Reported per N: the process's peak heap
# (every live call's state plus the allocations of the moment) and RSS; then the heap per
# call as the slope between the first and last N, which cancels what does not grow with
# calls. BASELINE=path/to/an/older/switchboard runs the same steps with it, interleaved.
#
#   bash benches/load/heap.sh     (env: CALLS (default "100 300"), BASELINE, OUT_DIR)
#
# Installs SIPp and heaptrack from Debian when missing. Ports as media.sh's switchboard
# part. Bounded in count and time; every process started is stopped by PID.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CALLS=${CALLS:-"100 300"}
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/sb-heap.XXXXXX")}
mkdir -p "$OUT_DIR"
. "$ROOT/benches/load/common.sh"
need sipp sip-tester
need heaptrack heaptrack
switchboard_for_calls

tone_caller

step() { # binary tag calls: prints "TAG N PEAK_BYTES RSS_KB LIVE RC"
  local bin=$1 tag=$2 n=$3 rate=20
  local ramp=$(( n / rate + 3 )) d="$OUT_DIR/$tag-$n"
  mkdir -p "$d"; rm -rf "$OUT_DIR/state"
  heaptrack -o "$d/heap" "$bin" run --config "$OUT_DIR/switchboard.toml" >"$d/sb.log" 2>&1 &
  local ht=$!; PIDS+=("$ht")
  for _ in $(seq 100); do ss -lun | grep -q "127.0.0.1:5360 " && break; sleep 0.1; done
  local sb; sb=$(pgrep -P "$ht" -f "switchboard.toml" | head -1); sb=${sb:-$ht}
  sipp 127.0.0.1:5360 -sf "$ROOT/tests/sipp/register_auth.xml" -s 2001 -au 2001 -ap bench-password-2 -m 1 \
    -i 127.0.0.1 -p 5370 -ci 127.0.0.1 -cp 5376 -nostdin >/dev/null 2>&1 || { echo "$tag $n callee did not register"; stop_pid "$ht"; return 1; }
  sipp -sf "$ROOT/tests/sipp/uas_answer.xml" -i 127.0.0.1 -p 5370 -ci 127.0.0.1 -cp 5375 -buff_size 4194304 -nostdin \
    -mp 37000 -rtp_echo >"$d/uas.log" 2>&1 & local uas=$!; PIDS+=("$uas")
  sipp 127.0.0.1:5360 -sf "$OUT_DIR/uac_media.xml" -s 5550100 -i 127.0.0.3 -p 5380 -ci 127.0.0.1 -cp 5385 \
    -buff_size 4194304 -nostdin -mp 38000 -d $(( (ramp + 8) * 1000 )) -r $rate -m "$n" -l "$n" \
    -timeout $(( ramp + 40 )) >"$d/uac.log" 2>&1 & local uac=$!; PIDS+=("$uac")
  sleep $(( ramp + 4 ))
  local rss live
  rss=$(awk '/VmRSS/{print $2}' "/proc/$sb/status")
  live=$("$bin" ctl --json --state-dir "$OUT_DIR/state" calls | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["calls"]))')
  wait "$uac"; local rc=$?
  stop_pid "$uas"
  kill "$sb" 2>/dev/null; wait "$ht" 2>/dev/null
  local peak
  peak=$(heaptrack_print -f "$d"/heap*.zst -p 0 -a 0 -T 0 -F "$d/peak.stacks" --flamegraph-cost-type peak 2>/dev/null \
    | awk '/peak heap memory consumption/{print $NF}')
  echo "$tag $n $peak $rss $live $rc"
}

bytes() { python3 -c 'import sys; s=sys.argv[1]; m={"K":1e3,"M":1e6,"G":1e9}; print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(float(s.rstrip("B"))))' "$1"; }

log "# heap of N relayed G.711 calls held, $(nproc) cores, $(heaptrack --version 2>&1 | head -1)"
log "$(printf '%-12s %6s %5s %11s %8s %3s' target calls live peak_heap rss_kb rc)"
declare -A first last
for n in $CALLS; do
  for t in switchboard ${BASELINE:+baseline}; do
    bin=$SB; [ "$t" = baseline ] && bin=$BASELINE
    read -r tag nn peak rss live rc < <(step "$bin" "$t" "$n")
    log "$(printf '%-12s %6s %5s %11s %8s %3s' "$tag" "$nn" "$live" "$peak" "$rss" "$rc")"
    b=$(bytes "$peak")
    [ -z "${first[$t]:-}" ] && first[$t]="$n $b"
    last[$t]="$n $b"
  done
done
for t in switchboard ${BASELINE:+baseline}; do
  read -r n0 b0 <<<"${first[$t]}"; read -r n1 b1 <<<"${last[$t]}"
  [ "$n1" != "$n0" ] && log "$(printf '%-12s heap per call (slope %s..%s calls): %.1f KB' "$t" "$n0" "$n1" "$(python3 -c "print(($b1 - $b0) / ($n1 - $n0) / 1000)")")"
done
log "# per-step heap profiles (peak stacks) in $OUT_DIR"
