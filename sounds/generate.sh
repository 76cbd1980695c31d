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

tone() { # name: a 400 ms beep at 1 kHz
  sox -R -n -r 8000 -c 1 -b 16 -e signed-integer "$1.wav" synth 0.4 sine 1000 vol 0.5
  echo "$1.wav: (1 kHz beep)"
}

say demo-welcome "Welcome to switchboard. This is the prompt test. Goodbye."
say welcome "Welcome."
say main-menu "For sales, press 1. For support, press 2. For the operator, press 0. To dial an extension, press 9."
say invalid-option "That is not a valid option."
say please-hold "Please hold while we connect your call."
say goodbye "Goodbye."
say you-are-caller-number "You are caller number"
say minutes "minutes"
say minute "minute"
say estimated-wait "Your estimated wait is about"
say enter-extension "Please enter the extension number, followed by the pound key."
say after-hours "Our office is now closed."
say leave-message "Please leave your message after the tone. Press pound when you are done."
say vm-enter-pin "Please enter your voicemail PIN, then press pound."
say vm-wrong-pin "That PIN is not right."
say vm-you-have "You have"
say vm-new-messages "new messages"
say vm-and "and"
say vm-saved-messages "saved messages"
say vm-main-menu "To hear your messages, press 1. To record your greeting, press 0. To hang up, press star."
say vm-message "Message"
say vm-after-message "To hear it again, press 1. To delete it, press 7. For the next message, press 9. For the main menu, press star."
say vm-deleted "Message deleted."
say vm-no-more-messages "There are no more messages."
say vm-record-greeting "After the tone, say your greeting, then press pound."
say vm-greeting-saved "Your greeting is saved."
say vm-closed "This mailbox cannot be opened by phone."
say agent-logged-in "You are logged in to your queues."
say agent-logged-out "You are logged out of your queues."
say agent-paused "You are paused."
say agent-unpaused "You are available for calls again."
say agent-enter-id "Please enter your agent number, then press pound."
say agent-enter-pin "Please enter your agent PIN, then press pound."
say agent-phone-taken "Another agent is logged in at this phone."
say agent-locked "Too many wrong PINs. Please try again later."
say callback-offer "To hang up and keep your place, and be called back when an agent is free, press"
say callback-confirm "Thank you. We will call you back at the number you called from when it is your turn. Goodbye."
say parked-at "The call is parked at"
say dnd-on "Do not disturb is on."
say dnd-off "Do not disturb is off."
say forward-on "Your calls are forwarded."
say forward-off "Call forwarding is off."
tone beep

mkdir -p digits
for n in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 30 40 50 60 70 80 90; do
  words=(zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen)
  if [ "$n" -lt 20 ]; then w=${words[$n]}; else
    case $n in 20) w=twenty;; 30) w=thirty;; 40) w=forty;; 50) w=fifty;; 60) w=sixty;; 70) w=seventy;; 80) w=eighty;; 90) w=ninety;; esac
  fi
  say "digits/$n" "$w"
done
say digits/hundred "hundred"
say digits/thousand "thousand"
say digits/star "star"
say digits/pound "pound"

# Music on hold: a slow progression of plucked chords, synthesized here (no recording, no
# royalties), 16 s, looped by the player.
mkdir -p moh
chords=("261.63 329.63 392.00" "220.00 261.63 329.63" "174.61 220.00 261.63" "196.00 246.94 293.66")
parts=()
for i in 0 1 2 3 4 5 6 7; do
  read -r a b c <<<"${chords[$((i % 4))]}"
  part=$(mktemp --suffix .wav)
  sox -R -n -r 8000 -c 3 -b 16 -e signed-integer "$part" synth 2 pluck "$a" pluck "$b" pluck "$c" remix 1-3 fade 0.02 2 0.4 vol 0.5
  parts+=("$part")
done
sox -R "${parts[@]}" -r 8000 -c 1 -b 16 -e signed-integer moh/default.wav norm -6
rm -f "${parts[@]}"
echo "moh/default.wav: (synthesized chords)"

# Ringback, heard by a caller already answered here (in a menu) while a dial rings: the
# North American cadence, 440 + 480 Hz for 2 s, then 4 s of quiet; looped by the player.
sox -R -n -r 8000 -c 2 -b 16 -e signed-integer -t wav - synth 2 sine 440 sine 480 2>/dev/null |
  sox -R -t wav - -r 8000 -c 1 -b 16 -e signed-integer ringback.wav remix 1-2 vol 0.35 pad 0 4
echo "ringback.wav: (440 + 480 Hz, 2 s on, 4 s off)"
