#!/usr/bin/env bash
# The API's benchmarks (BENCHMARKS.md, "API"): search over HTTP on the 1M-row index beside
# the in-process figure, and audio download against nginx serving the same file.
#
# Installs Debian's nginx-light if nginx is missing (benchmarks only: tests never need it).
# Usage: scripts/bench-api.sh [search|download|all]   (default all)
# Environment: CARGO_TARGET_DIR, CALLREC_BENCH_DIR, CALLREC_BENCH_ROWS, CALLREC_BENCH_QUERIES,
#              CALLREC_BENCH_FILE_MB, CALLREC_BENCH_ROUNDS, CALLREC_NGINX.
set -euo pipefail
cd "$(dirname "$0")/.."

# This machine sets RUST_BACKTRACE=1; it slows some paths measurably. Figures are taken
# without it.
unset RUST_BACKTRACE

what="${1:-all}"

if [[ "$what" == all || "$what" == download ]]; then
    if [[ ! -x "${CALLREC_NGINX:-/usr/sbin/nginx}" ]]; then
        echo "installing nginx-light (Debian) for the download comparison…" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # Do not let the package start its own service on port 80.
        made_policy=0
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod +x /usr/sbin/policy-rc.d
            made_policy=1
        fi
        apt-get install -y -qq nginx-light >/dev/null
        if [[ $made_policy == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
    fi
    "${CALLREC_NGINX:-/usr/sbin/nginx}" -v
fi

if [[ "$what" == all || "$what" == search ]]; then
    cargo bench -p callrec-api --bench search_http
fi
if [[ "$what" == all || "$what" == download ]]; then
    cargo bench -p callrec-api --bench download
fi
