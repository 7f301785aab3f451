#!/usr/bin/env bash
# The real-switch suite: callrec serve against a real FreeSWITCH (crates/callrec-realswitch).
#
# Usage: scripts/real-switch.sh [TEST-NAME-FILTER] [-- extra libtest args]
#
#   CALLREC_FREESWITCH_PREFIX  an installed FreeSWITCH to use (source-built prefix with the
#                              vanilla sample configuration in etc/freeswitch); when unset,
#                              FreeSWITCH is built into /opt/freeswitch-test (or reused).
#   CALLREC_SHARED_DIR         the shared directory with freeswitch/build.sh and configure.sh
#                              (default: ../shared beside the repository)
#
# The installed switch's files are not changed: every test copies its configuration, applies
# configure.sh (loopback-only test setup) and the project's own dialplan/callrec.xml to the
# copy, and runs the switch on its own ports. No process is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CALLREC_SHARED_DIR=${CALLREC_SHARED_DIR:-$(realpath -m "$ROOT/../shared")}
if [ -z "${CALLREC_FREESWITCH_PREFIX:-}" ]; then
  export CALLREC_FREESWITCH_PREFIX=/opt/freeswitch-test
  start=$(date +%s)
  "$CALLREC_SHARED_DIR/freeswitch/build.sh" "$CALLREC_FREESWITCH_PREFIX"
  echo "FreeSWITCH ready in $(( $(date +%s) - start )) s"
fi
[ -x "$CALLREC_FREESWITCH_PREFIX/bin/freeswitch" ] \
  || { echo "no FreeSWITCH at $CALLREC_FREESWITCH_PREFIX/bin/freeswitch"; exit 1; }
[ -d "$CALLREC_FREESWITCH_PREFIX/etc/freeswitch" ] \
  || { echo "no configuration at $CALLREC_FREESWITCH_PREFIX/etc/freeswitch"; exit 1; }
[ -x "$CALLREC_SHARED_DIR/freeswitch/configure.sh" ] \
  || { echo "no $CALLREC_SHARED_DIR/freeswitch/configure.sh (set CALLREC_SHARED_DIR)"; exit 1; }

cargo build -p callrec --locked
export CALLREC_BIN="$ROOT/target/debug/callrec"
start=$(date +%s)
cargo test -p callrec-realswitch --features real-switch --locked --test real_switch -- --test-threads=1 "$@"
echo "real-switch suite: $(( $(date +%s) - start )) s"
