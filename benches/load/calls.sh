#!/usr/bin/env bash
# Calls per second through switchboard's B2BUA, with Kamailio as a stateful proxy
# measured in the same run (the shared peers script, when ../shared/peers is beside the
# repository).
#
# switchboard: a SIPp caller on 127.0.0.3 (a trunk, so no digest round, like the proxy)
# dials a number the dialplan sends to extension 2001, a SIPp callee that answers; each
# call holds 1 s and is hung up by the caller. switchboard sets up two media legs and a
# bridge per call (ports, tasks) though no RTP is sent; Kamailio does no media at all. A step passes
# with zero failed calls and 90 % of the rate reached. CPU is the process's own
# (utime+stime, 100 % = one core), CPU ms per call is that over the calls completed.
#
#   bash benches/load/calls.sh     (env: RATES, STEP_SECS, OUT_DIR, KAMAILIO=0 to skip,
#                                   BASELINE=path/to/an/older/switchboard to run it too)
#
# BASELINE runs the same steps with another build (for before/after figures of a change,
# interleaved rate by rate with this tree's build, so both meet the same machine).
# Installs SIPp and Kamailio from Debian when missing (needs root). Ports on loopback:
# switchboard 5360, callee 5370, caller 127.0.0.3:5380, SIPp control 5375/5385/5376,
# RTP 40000-49999. Every process started is stopped by PID; every load is bounded.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RATES=${RATES:-"100 200 400 600 800 1000"}
STEP_SECS=${STEP_SECS:-15}
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/sb-calls.XXXXXX")}
mkdir -p "$OUT_DIR"
. "$ROOT/benches/load/common.sh"
need sipp sip-tester
switchboard_for_calls


step() { # rate [label]
  local rate=$1 label=${2:-switchboard} n=$(( $1 * STEP_SECS ))
  start_switchboard "$OUT_DIR/sb_$rate.log" || return 1
  local sb=$SB_PID
  sipp -sf "$ROOT/tests/sipp/uas_answer.xml" -i 127.0.0.1 -p 5370 -ci 127.0.0.1 -cp 5375 -buff_size 4194304 -nostdin \
    -mp 36000 >"$OUT_DIR/uas_$rate.log" 2>&1 & local uas=$!; PIDS+=("$uas")
  local t0 c0 t1 c1
  t0=$(date +%s.%N); c0=$(ticks "$sb")
  sipp 127.0.0.1:5360 -sf "$ROOT/tests/sipp/uac_trunk_in.xml" -s 5550100 -i 127.0.0.3 -p 5380 -ci 127.0.0.1 -cp 5385 \
    -buff_size 4194304 -nostdin -mp 36100 -d 1000 -r "$rate" -m "$n" -timeout $(( STEP_SECS * 3 + 20 )) -timeout_error \
    >"$OUT_DIR/uac_$rate.log" 2>&1
  local rc=$?
  t1=$(date +%s.%N); c1=$(ticks "$sb")
  stop_pid "$uas"; stop_pid "$sb"
  local ok failed
  ok=$(grep -E "Successful call" "$OUT_DIR/uac_$rate.log" | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
  failed=$(grep -E "Failed call" "$OUT_DIR/uac_$rate.log" | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
  python3 - "$rate" "${ok:-0}" "${failed:-0}" "$t0" "$t1" "$c0" "$c1" "$HZ" "$rc" "$label" <<'PY'
import sys
rate, ok, failed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0, t1, c0, c1, hz, rc = float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
label = sys.argv[10]
wall = t1 - t0 - 1.0  # the last calls' 1 s hold
cps = ok / wall if wall > 0 else 0
cpu = (c1 - c0) / hz
verdict = "PASS" if failed == 0 and rc == 0 and cps >= 0.9 * rate else "FAIL"
print(f"{label:<12} {rate:>6} {cps:>9.0f} {100 * cpu / wall:>8.1f} {1000 * cpu / max(ok, 1):>11.3f} {failed:>7} {verdict}")
PY
}

log "# calls/s through switchboard (B2BUA + relay set-up, no RTP), STEP_SECS=$STEP_SECS, 1 s hold, $(nproc) cores"
log "$(printf '%-12s %6s %9s %8s %11s %7s %s' target rate achieved cpu_pct cpu_ms/call failed verdict)"
base_failed=0
for rate in $RATES; do
  SB=$SB_BUILT
  line=$(step "$rate")
  log "$line"
  if [ -n "${BASELINE:-}" ] && [ "$base_failed" = 0 ]; then
    SB=$BASELINE
    bline=$(step "$rate" baseline)
    log "$bline"
    case "$bline" in *FAIL*) base_failed=1 ;; esac
  fi
  case "$line" in *FAIL*) [ -z "${BASELINE:-}" ] || [ "$base_failed" = 1 ] && break ;; esac
done

SHARED="$ROOT/../shared/peers/kamailio-proxy/bench.sh"
if [ "${KAMAILIO:-1}" = 1 ] && [ -f "$SHARED" ]; then
  need kamailio kamailio
  log "# Kamailio as a stateful proxy, same rates, by the shared peers script:"
  RATES="$RATES" STEP_SECS=$STEP_SECS OUT_DIR="$OUT_DIR/kamailio" bash "$SHARED" proxy 2>&1 | grep -E "^mode=|RESULT" | tee -a "$OUT_DIR/summary.txt"
else
  log "# Kamailio step skipped (KAMAILIO=0 or no ../shared/peers beside the repository)"
fi
log "# results in $OUT_DIR"
