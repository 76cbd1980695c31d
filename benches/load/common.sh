# Shared by the load scripts here (sourced, not run): peer installation, process
# bookkeeping, logging, and the switchboard set-up the call and media harnesses share.
# Expects ROOT and OUT_DIR to be set.

# need COMMAND PACKAGE: installs the Debian package when the command is missing.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "installing $2"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

# Every process started is recorded here and stopped on exit.
PIDS=()
stop_pid() { kill "$1" 2>/dev/null; for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; kill -9 "$1" 2>/dev/null; }
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && stop_pid "$p"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "$*" | tee -a "$OUT_DIR/summary.txt"; }

# CPU ticks (utime + stime) of one process.
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)

# Builds switchboard and writes a config for the call harnesses: UDP 127.0.0.1:5360,
# extension 2001, and a trunk "load" at 127.0.0.3 whose calls the dialplan sends to 2001.
switchboard_for_calls() {
  (cd "$ROOT" && cargo build --release --quiet) || exit 1
  SB="$ROOT/target/release/switchboard"
  SB_BUILT=$SB
  cat >"$OUT_DIR/plan.dp" <<DP
context internal { match "600" { echo } }
context inbound { match any { dial "2001" timeout 10s; hangup } }
DP
  cat >"$OUT_DIR/switchboard.toml" <<CFG
[server]
domain = "127.0.0.1"
listen = ["udp:127.0.0.1:5360"]
state_dir = "$OUT_DIR/state"
[sip]
# The harness's phones are one source sending thousands of requests a second (Kamailio,
# measured beside it, limits nothing either).
rate_per_source = 0
[rtp]
ports = "40000-49999"
[calls]
dialplan = "$OUT_DIR/plan.dp"
context = "internal"
[auth]
algorithms = ["MD5"]
[[users]]
extension = "2001"
password = "bench-password-2"
[[trunks]]
name = "load"
address = "127.0.0.3:5380"
inbound_from = ["127.0.0.3"]
context = "inbound"
CFG
  "$SB" check --config "$OUT_DIR/switchboard.toml" >/dev/null || exit 1
}

# Starts switchboard (sets SB_PID) and registers SIPp as extension 2001 on port 5370.
start_switchboard() { # log-file
  rm -rf "$OUT_DIR/state"
  "$SB" run --config "$OUT_DIR/switchboard.toml" >"$1" 2>&1 &
  SB_PID=$!; PIDS+=("$SB_PID")
  for _ in $(seq 100); do ss -lun | grep -q "127.0.0.1:5360 " && break; sleep 0.1; done
  sipp 127.0.0.1:5360 -sf "$ROOT/tests/sipp/register_auth.xml" -s 2001 -au 2001 -ap bench-password-2 -m 1 \
    -i 127.0.0.1 -p 5370 -ci 127.0.0.1 -cp 5376 -nostdin >/dev/null 2>&1 || { echo "callee did not register"; return 1; }
}

# CPU ticks and PSS (kB; shared pages split fairly) of processes and all their descendants:
# tree_stat PID [PID...] prints "TICKS PSS_KB".
tree_stat() {
  python3 - "$@" <<'PY'
import os, sys
kids = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            s = open(f"/proc/{d}/stat").read()
            kids.setdefault(int(s[s.rfind(")") + 2:].split()[1]), []).append(int(d))
        except OSError:
            pass
todo, seen, ticks, pss = [int(p) for p in sys.argv[1:]], set(), 0, 0
while todo:
    p = todo.pop()
    if p in seen:
        continue
    seen.add(p)
    try:
        f = open(f"/proc/{p}/stat").read()
        f = f[f.rfind(")") + 2:].split()
        ticks += int(f[11]) + int(f[12])
        for line in open(f"/proc/{p}/smaps_rollup"):
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
    except OSError:
        pass
    todo += kids.get(p, [])
print(ticks, pss)
PY
}

# Writes OUT_DIR/uac_media.xml: the calls harness's trunk caller (tests/sipp/uac_trunk_in.xml)
# streaming OUT_DIR/tone.wav, 10 s of a 440 Hz tone as μ-law, while each call holds.
tone_caller() {
python3 - "$OUT_DIR/tone.wav" <<'PY'
import math, struct, sys
def ulaw(s):
    sign = 0x80 if s < 0 else 0
    s = min(abs(s), 32635) + 0x84
    e, mask = 7, 0x4000
    while e > 0 and not s & mask:
        e, mask = e - 1, mask >> 1
    return ~(sign | e << 4 | (s >> (e + 3)) & 0x0F) & 0xFF
data = bytes(ulaw(int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(80000))
fmt = struct.pack('<HHIIHH', 7, 1, 8000, 8000, 1, 8)
with open(sys.argv[1], 'wb') as f:
    f.write(b'RIFF' + struct.pack('<I', 4 + 8 + len(fmt) + 8 + len(data)) + b'WAVE')
    f.write(b'fmt ' + struct.pack('<I', len(fmt)) + fmt + b'data' + struct.pack('<I', len(data)) + data)
PY
# The trunk caller of the calls harness, streaming the tone while the call holds.
python3 - "$ROOT/tests/sipp/uac_trunk_in.xml" "$OUT_DIR/uac_media.xml" "$OUT_DIR/tone.wav" <<'PY'
import sys
s = open(sys.argv[1]).read()
i = s.index('  <pause/>\n')
play = f'  <nop>\n    <action>\n      <exec rtp_stream="{sys.argv[3]},-1,0"/>\n    </action>\n  </nop>\n'
stop = '  <nop>\n    <action>\n      <exec rtp_stream="pause"/>\n    </action>\n  </nop>\n'
open(sys.argv[2], 'w').write(s[:i] + play + '  <pause/>\n' + stop + s[i + len('  <pause/>\n'):])
PY
}
