#!/usr/bin/env bash
# Runs callrec's tests against a real FreeSWITCH (crates/callrec/tests/real_switch.rs).
#
#   scripts/real-switch.sh                 build (or reuse) FreeSWITCH from ../shared/freeswitch
#                                          into /opt/freeswitch-test, then run the suite
#   CALLREC_FREESWITCH_PREFIX=/usr/local/freeswitch scripts/real-switch.sh
#                                          use a switch you built yourself (bin/freeswitch,
#                                          bin/fs_cli, etc/freeswitch under that prefix)
#
# The shipped dialplan/callrec.xml is installed into the switch's dialplan/default/, so the
# drop-in users copy is what is tested. The suite starts and stops the switch itself (ESL on
# 127.0.0.1:8021, SIP on 127.0.0.1:5060, feature codes to 127.0.0.1:8084): nothing else may
# use those ports while it runs. Extra arguments go to the test binary (e.g. a test name).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${CALLREC_SHARED_DIR:-$ROOT/../shared}
if [ -n "${CALLREC_FREESWITCH_PREFIX:-}" ]; then
  PREFIX=$CALLREC_FREESWITCH_PREFIX
  [ -x "$PREFIX/bin/freeswitch" ] || { echo "no FreeSWITCH at $PREFIX (CALLREC_FREESWITCH_PREFIX)" >&2; exit 1; }
else
  PREFIX=/opt/freeswitch-test
  [ -x "$SHARED/freeswitch/build.sh" ] || { echo "no $SHARED/freeswitch/build.sh: set CALLREC_SHARED_DIR or CALLREC_FREESWITCH_PREFIX" >&2; exit 1; }
  "$SHARED/freeswitch/build.sh" "$PREFIX"
  "$SHARED/freeswitch/configure.sh" "$PREFIX"
fi
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
install -m 0644 dialplan/callrec.xml "$PREFIX/etc/freeswitch/dialplan/default/callrec.xml"
export CALLREC_FREESWITCH_PREFIX=$PREFIX
# Whatever happens, leave no switch behind.
trap '"$PREFIX/bin/freeswitch" -stop >/dev/null 2>&1 || true' EXIT
cargo test -p callrec --features real-switch --test real_switch --locked -- --test-threads=1 "$@"
