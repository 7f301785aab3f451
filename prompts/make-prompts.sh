#!/usr/bin/env bash
# Regenerates the voice prompts played after a feature code (SPEC §3.5).
#
# Made once and committed; run again only to change the wording. Needs the Debian packages
# espeak-ng and sox (`apt-get install espeak-ng sox`). Output: 8 kHz, mono, 16-bit PCM WAV,
# the format FreeSWITCH plays without resampling on a narrowband call.
set -euo pipefail
cd "$(dirname "$0")"

say() {
    local name=$1 text=$2
    espeak-ng -v en-gb -s 150 -w "$name.tmp.wav" "$text"
    # Trim leading silence, then pad 0.2 s either side so the prompt is not clipped by
    # media setup on answer.
    sox "$name.tmp.wav" -r 8000 -c 1 -b 16 -e signed-integer "$name.wav" \
        silence 1 0.02 1% pad 0.2 0.2 norm -3
    rm -f "$name.tmp.wav"
}

say paused      "Recording paused."
say resumed     "Recording resumed."
say started     "Recording started."
say not_allowed "Sorry, that is not allowed."
say no_call     "No call found. Put the call on hold, then dial the code again."
