#!/usr/bin/env bash
# Instructions per parsed message, switchboard vs rsip, counted by callgrind: repeatable
# on a shared machine where wall time is noise. Needs valgrind (apt-get install valgrind).
#   bash benches/parse-instructions.sh [N]
set -eu
cd "$(dirname "$0")/.."
N=${1:-10000}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
cargo build --release --quiet --example parse_loop
BIN=target/release/examples/parse_loop
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
base=$(count none invite "$N")
printf '%-10s %-12s %14s\n' message parser instr/message
for msg in invite register; do
  for p in switchboard rsip; do
    total=$(count "$p" "$msg" "$N")
    printf '%-10s %-12s %14d\n' "$msg" "$p" $(( (total - base) / N ))
  done
done
