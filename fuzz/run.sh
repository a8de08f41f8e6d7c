#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) on the
# committed corpus. cargo-fuzz needs nightly-only rustc flags; RUSTC_BOOTSTRAP
# lets the stable toolchain accept them, so no second toolchain is needed.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
export RUSTC_BOOTSTRAP=1
for target in reply_decoder server_command render_query; do
    echo "fuzzing $target for ${seconds}s"
    log="$(mktemp)"
    status=0
    cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=4096 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log"
        echo "fuzz target $target failed (exit $status)"
        exit "$status"
    fi
done
