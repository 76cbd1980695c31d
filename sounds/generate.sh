#!/usr/bin/env bash
# Regenerates the prompts in sounds/ from the texts below, reproducibly: flite (speech,
# BSD-style licence, run as an external tool) and sox (to 8 kHz mono 16-bit PCM).
#   apt-get install flite sox && bash sounds/generate.sh
# Replace any file with a studio recording of the same name and format to customise.
set -euo pipefail
cd "$(dirname "$0")"
command -v flite >/dev/null && command -v sox >/dev/null || { echo "needs flite and sox (apt-get install flite sox)"; exit 1; }
VOICE=${VOICE:-slt}

say() { # name text
  local tmp
  tmp=$(mktemp --suffix .wav)
  flite -voice "$VOICE" -t "$2" -o "$tmp"
  # Strip WAV metadata so the same text gives the same bytes on every run.
  sox -R "$tmp" -r 8000 -c 1 -b 16 -e signed-integer "$1.wav" norm -3
  rm -f "$tmp"
  echo "$1.wav: $2"
}

say demo-welcome "Welcome to switchboard. This is the prompt test. Goodbye."
