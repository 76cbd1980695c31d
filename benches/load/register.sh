#!/usr/bin/env bash
# REGISTER/s with digest auth: switchboard and Kamailio side by side in the same run.
#
# For each target and each rate of the ramp, a fresh registrar is started on loopback and
# SIPp registers NUSERS users at that rate for STEP_SECS seconds (REGISTER, 401,
# REGISTER with credentials, 200). A step passes with zero failed registrations and the
# rate actually reached. Reported per step: achieved registrations/s, the target's CPU%
# (100 = one core) and CPU µs per registration; at the end, the highest passing rate of
# each and their ratio.
#
#   bash benches/load/register.sh            (env: RATES, STEP_SECS, NUSERS, OUT_DIR)
#
# Installs SIPp and Kamailio from Debian when missing (needs root). Ports: 127.0.0.1
# 5260 (switchboard), 5262 (Kamailio), 5265 (SIPp), 5266 (SIPp control). Every process it
# starts is stopped by PID; every load is bounded by count and time.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/benches/load"
RATES=${RATES:-"500 1000 2000 3000 4000 5000 6000 8000 10000"}
STEP_SECS=${STEP_SECS:-10}
NUSERS=${NUSERS:-2000}
OUT_DIR=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/sb-register.XXXXXX")}
PASSWORD=bench-password-1
mkdir -p "$OUT_DIR"
. "$ROOT/benches/load/common.sh"

need sipp sip-tester
need kamailio kamailio


(cd "$ROOT" && cargo build --release --quiet) || exit 1
SB="$ROOT/target/release/switchboard"

# Users: the same names and password on both registrars.
CFG="$OUT_DIR/switchboard.toml"
{
  printf '[server]\ndomain = "127.0.0.1"\nlisten = ["udp:127.0.0.1:5260"]\nstate_dir = "%s/state"\n' "$OUT_DIR"
  # SIPp is one source sending thousands of REGISTERs a second: no per-source rate here
  # (Kamailio's registrar has none either).
  printf '[sip]\nrate_per_source = 0\n'
  printf '[auth]\nalgorithms = ["MD5"]\n'
  printf '[calls]\ndialplan = "%s/plan.dp"\n' "$OUT_DIR"
  for i in $(seq -w 1 "$NUSERS"); do printf '[[users]]\nextension = "u%s"\npassword = "%s"\n' "$i" "$PASSWORD"; done
} >"$CFG"
echo 'context internal { match "600" { echo } }' >"$OUT_DIR/plan.dp"
"$SB" check --config "$CFG" >/dev/null || { echo "generated config invalid"; exit 1; }
USERS="$OUT_DIR/users.csv"
{ echo SEQUENTIAL; for i in $(seq -w 1 "$NUSERS"); do echo "u$i;[authentication username=u$i password=$PASSWORD]"; done; } >"$USERS"

# CPU ticks (utime+stime) of a process and its threads/children.
ticks() { python3 - "$1" <<'PY'
import os, sys
def kids(p):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                s = open(f"/proc/{d}/stat").read()
                if int(s[s.rfind(")") + 2:].split()[1]) == p: out.append(int(d))
            except OSError: pass
    return out
todo, seen, t = [int(sys.argv[1])], set(), 0
while todo:
    p = todo.pop()
    if p in seen: continue
    seen.add(p)
    try:
        f = open(f"/proc/{p}/stat").read(); f = f[f.rfind(")") + 2:].split()
        t += int(f[11]) + int(f[12])
    except OSError: pass
    todo += kids(p)
print(t)
PY
}
HZ=$(getconf CLK_TCK)

start_target() { # name
  case $1 in
    switchboard)
      "$SB" run --config "$CFG" >"$OUT_DIR/sb.log" 2>&1 & TPID=$!; PORT=5260 ;;
    kamailio)
      kamailio -DD -E -f "$HERE/kamailio-registrar.cfg" -m 256 -M 16 -A "CHILDREN=2" -A "PASSWORD=\"$PASSWORD\"" \
        -Y "$OUT_DIR" -P "$OUT_DIR/kamailio.pid" >"$OUT_DIR/kam.log" 2>&1 & TPID=$!; PORT=5262 ;;
  esac
  PIDS+=("$TPID")
  for _ in $(seq 100); do ss -lun | grep -q "127.0.0.1:$PORT " && return 0; sleep 0.1; done
  echo "$1 did not start"; exit 1
}

step() { # target rate -> prints "achieved cpu_pct us_per_reg failed"
  local target=$1 rate=$2 n=$(( $2 * STEP_SECS ))
  start_target "$target"
  local t0 c0 t1 c1
  sipp -sf "$HERE/register.xml" -inf "$USERS" -i 127.0.0.1 -p 5265 -ci 127.0.0.1 -cp 5266 -buff_size 4194304 -nostdin \
    -r "$rate" -m "$n" -timeout $(( STEP_SECS * 3 + 20 )) -timeout_error 127.0.0.1:$PORT >"$OUT_DIR/sipp_${target}_$rate.log" 2>&1 &
  local sp=$!; PIDS+=("$sp")
  t0=$(date +%s.%N); c0=$(ticks "$TPID")
  wait $sp; local rc=$?
  t1=$(date +%s.%N); c1=$(ticks "$TPID")
  stop_pid "$TPID"
  local ok failed
  ok=$(grep -E "Successful call" "$OUT_DIR/sipp_${target}_$rate.log" | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
  failed=$(grep -E "Failed call" "$OUT_DIR/sipp_${target}_$rate.log" | tail -1 | awk -F'|' '{gsub(/ /,"",$3); print $3}')
  python3 - "$ok" "$failed" "$t0" "$t1" "$c0" "$c1" "$HZ" "$rc" <<'PY'
import sys
ok, failed = int(sys.argv[1] or 0), int(sys.argv[2] or 0)
t0, t1, c0, c1, hz, rc = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
wall = t1 - t0
cpu = (c1 - c0) / hz
print(f"{ok / wall:.0f} {100 * cpu / wall:.1f} {1e6 * cpu / max(ok, 1):.1f} {failed} {rc}")
PY
}

log "# REGISTER with digest auth (MD5, qop=auth), NUSERS=$NUSERS, STEP_SECS=$STEP_SECS, $(nproc) cores"
log "# $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*'), kamailio $(kamailio -v | head -1 | cut -d' ' -f3) (children=2), switchboard $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
log "$(printf '%-12s %7s %9s %8s %12s %7s %s' target rate achieved cpu_pct cpu_us/reg failed verdict)"
declare -A BEST=([switchboard]=0 [kamailio]=0) ALIVE=([switchboard]=1 [kamailio]=1)
for rate in $RATES; do
  for target in switchboard kamailio; do
    [ "${ALIVE[$target]}" = 1 ] || continue
    read -r achieved cpu us failed rc < <(step "$target" "$rate")
    verdict=PASS
    if [ "$failed" != 0 ] || [ "$rc" != 0 ] || [ "$achieved" -lt $(( rate * 90 / 100 )) ]; then verdict=FAIL; ALIVE[$target]=0; else BEST[$target]=$rate; fi
    log "$(printf '%-12s %7s %9s %8s %12s %7s %s' "$target" "$rate" "$achieved" "$cpu" "$us" "$failed" "$verdict")"
  done
  [ "${ALIVE[switchboard]}${ALIVE[kamailio]}" = 00 ] && break
done
log "# highest passing rate: switchboard ${BEST[switchboard]}/s, kamailio ${BEST[kamailio]}/s (load now: $(cut -d' ' -f1-3 /proc/loadavg))"
log "# results in $OUT_DIR"
