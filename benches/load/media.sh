#!/usr/bin/env bash
# Concurrent relayed G.711 calls: switchboard's relay, with rtpengine in userspace
# measured in the same run (the shared peers script, when ../shared/peers is beside the
# repository).
#
# switchboard: for each N in CALLS, SIPp on 127.0.0.3 (a trunk) sets up N calls to
# extension 2001 (a SIPp callee echoing RTP, -rtp_echo) at 20 calls/s and streams a
# 440 Hz μ-law tone (50 packets/s, 172 bytes) in each; every call is two relayed
# streams. Once all N are up, the relay's packet counters and switchboard's CPU and RSS
# are read over SECS seconds. Reported: streams, packets relayed per second against the
# 100 packets/s per call sent, CPU % (100 = one core), CPU % per 100 streams, RSS and RSS
# per call above the idle process. The same calls then go through Kamailio + rtpengine
# (benches/load/kamailio-rtpengine.cfg), and rtpengine alone is measured by its own script
# (calls set up over its ng protocol, RTP pushed by a Python generator).
#
#   bash benches/load/media.sh     (env: CALLS, SECS, OUT_DIR, RTPENGINE=0 to skip)
#
# Installs SIPp (and rtpengine-daemon for the comparison) from Debian when missing.
# Ports on loopback: switchboard 5360, callee 5370 (media 37000), caller 127.0.0.3:5380
# (media 38000+), SIPp control 5375/5376/5385, relay 40000-49999; Kamailio 5362, its callee
# 5372 (media 37100), caller 5382 (media 38200+), control 5377/5387, rtpengine ng 5398 and
# media 50000-59999. Bounded in count and time;
# every process started is stopped by PID.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CALLS=${CALLS:-"50 100 200"}
SECS=${SECS:-15}
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/sb-media.XXXXXX")}
mkdir -p "$OUT_DIR"
. "$ROOT/benches/load/common.sh"
need sipp sip-tester
switchboard_for_calls

tone_caller
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
relayed() { "$SB" ctl --json --state-dir "$OUT_DIR/state" calls | python3 -c '
import json, sys
calls = json.load(sys.stdin)["calls"]
print(len(calls), sum(l.get("rtp_packets", 0) for c in calls for l in c["legs"]))'; }

step() { # calls
  local n=$1 rate=20
  local ramp=$(( n / rate + 3 ))
  start_switchboard "$OUT_DIR/sb_$n.log" || return 1
  local sb=$SB_PID
  local idle_rss; idle_rss=$(rss_kb "$sb")
  sipp -sf "$ROOT/tests/sipp/uas_answer.xml" -i 127.0.0.1 -p 5370 -ci 127.0.0.1 -cp 5375 -buff_size 4194304 -nostdin \
    -mp 37000 -rtp_echo >"$OUT_DIR/uas_$n.log" 2>&1 & local uas=$!; PIDS+=("$uas")
  sipp 127.0.0.1:5360 -sf "$OUT_DIR/uac_media.xml" -s 5550100 -i 127.0.0.3 -p 5380 -ci 127.0.0.1 -cp 5385 \
    -buff_size 4194304 -nostdin -mp 38000 -d $(( (ramp + SECS + 3) * 1000 )) -r $rate -m "$n" -l "$n" \
    -timeout $(( ramp + SECS + 30 )) >"$OUT_DIR/uac_$n.log" 2>&1 & local uac=$!; PIDS+=("$uac")
  sleep "$ramp"
  local c0 p0 t0 c1 p1 t1 up rss
  read -r up p0 < <(relayed); c0=$(ticks "$sb"); t0=$(date +%s.%N)
  sleep "$SECS"
  read -r up p1 < <(relayed); c1=$(ticks "$sb"); t1=$(date +%s.%N); rss=$(rss_kb "$sb")
  wait "$uac"; local rc=$?
  stop_pid "$uas"; stop_pid "$sb"
  python3 - "$n" "$up" "$p0" "$p1" "$c0" "$c1" "$t0" "$t1" "$HZ" "$rss" "$idle_rss" "$rc" <<'PY'
import sys
n, up, p0, p1, c0, c1 = (int(x) for x in sys.argv[1:7])
t0, t1 = float(sys.argv[7]), float(sys.argv[8])
hz, rss, idle, rc = int(sys.argv[9]), int(sys.argv[10]), int(sys.argv[11]), int(sys.argv[12])
wall = t1 - t0
pps = (p1 - p0) / wall
cpu = 100 * (c1 - c0) / hz / wall
streams = 2 * n
print(f"{'switchboard':<12} {n:>6} {up:>5} {streams:>7} {pps:>9.0f} {100 * pps / (100 * n):>7.1f}% {cpu:>7.1f} {100 * cpu / streams:>12.2f} {rss / 1024:>8.1f} {(rss - idle) / n:>10.1f} rc={rc}")
PY
}

log "# relayed G.711 calls (2 streams each, 50 packets/s per stream), SECS=$SECS, $(nproc) cores, $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*')"
log "$(printf '%-12s %6s %5s %7s %9s %8s %7s %12s %8s %10s' target calls up streams pkts/s of_sent cpu_pct cpu/100strm rss_mb kb/call)"
for n in $CALLS; do
  log "$(step "$n")"
done

# The same calls through Kamailio (stateful proxy) + rtpengine (userspace relay): the usual
# open-source pair doing what switchboard does in one process. CPU and PSS of both trees.
kam_step() { # calls
  local n=$1 rate=20
  local ramp=$(( n / rate + 3 ))
  rtpengine --config-file=none --foreground --log-stderr --log-level=4 --table=-1 --interface=127.0.0.1 \
    --listen-ng=127.0.0.1:5398 --port-min=50000 --port-max=59999 >"$OUT_DIR/rtpe_$n.log" 2>&1 &
  local rp=$!; PIDS+=("$rp")
  kamailio -DD -E -f "$ROOT/benches/load/kamailio-rtpengine.cfg" -m 256 -M 16 -Y "$OUT_DIR" -P "$OUT_DIR/kam.pid" \
    >"$OUT_DIR/kam_$n.log" 2>&1 &
  local kp=$!; PIDS+=("$kp")
  for _ in $(seq 100); do ss -lun | grep -q "127.0.0.1:5362 " && break; sleep 0.1; done
  sipp -sf "$ROOT/tests/sipp/uas_answer.xml" -i 127.0.0.1 -p 5372 -ci 127.0.0.1 -cp 5377 -buff_size 4194304 -nostdin \
    -mp 37100 -rtp_echo >"$OUT_DIR/kuas_$n.log" 2>&1 & local uas=$!; PIDS+=("$uas")
  sipp 127.0.0.1:5362 -sf "$OUT_DIR/uac_media.xml" -s 5550100 -i 127.0.0.1 -p 5382 -ci 127.0.0.1 -cp 5387 \
    -buff_size 4194304 -nostdin -mp 38200 -d $(( (ramp + SECS + 3) * 1000 )) -r $rate -m "$n" -l "$n" \
    -timeout $(( ramp + SECS + 30 )) >"$OUT_DIR/kuac_$n.log" 2>&1 & local uac=$!; PIDS+=("$uac")
  sleep "$ramp"
  local c0 c1 pss t0 t1
  read -r c0 _ < <(tree_stat "$kp" "$rp"); t0=$(date +%s.%N)
  sleep "$SECS"
  read -r c1 pss < <(tree_stat "$kp" "$rp"); t1=$(date +%s.%N)
  wait "$uac"; local rc=$?
  local failed
  failed=$(grep -E "Failed call" "$OUT_DIR/kuac_$n.log" | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
  stop_pid "$uas"; stop_pid "$kp"; stop_pid "$rp"
  python3 - "$n" "$c0" "$c1" "$t0" "$t1" "$HZ" "$pss" "${failed:-?}" "$rc" <<'PY'
import sys
n, c0, c1 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0, t1, hz, pss = float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
cpu = 100 * (c1 - c0) / hz / (t1 - t0)
streams = 2 * n
print(f"{'kam+rtpe':<12} {n:>6} {'-':>5} {streams:>7} {'-':>9} {'-':>8} {cpu:>7.1f} {100 * cpu / streams:>12.2f} {pss / 1024:>8.1f} {'-':>10} failed={sys.argv[8]} rc={sys.argv[9]}")
PY
}

if [ "${RTPENGINE:-1}" = 1 ]; then
  need rtpengine rtpengine-daemon
  need kamailio kamailio
  log "# Kamailio (stateful proxy, 2 workers) + rtpengine (userspace), same calls; CPU and PSS of both:"
  for n in $CALLS; do
    log "$(kam_step "$n")"
  done
fi

SHARED="$ROOT/../shared/peers/rtpengine/bench.sh"
if [ "${RTPENGINE:-1}" = 1 ] && [ -f "$SHARED" ]; then
  need rtpengine rtpengine-daemon
  log "# rtpengine (userspace), same call counts, by the shared peers script:"
  CALLS="$CALLS" SECS=$SECS OUT_DIR="$OUT_DIR/rtpengine" bash "$SHARED" 2>&1 | grep -vE "^\s*$" | tail -n 12 | tee -a "$OUT_DIR/summary.txt"
else
  log "# rtpengine step skipped (RTPENGINE=0 or no ../shared/peers beside the repository)"
fi
log "# results in $OUT_DIR"
