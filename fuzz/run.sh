#!/usr/bin/env bash
# Runs every fuzz target for a while (default 60 s each). cargo-fuzz needs
# nightly features; RUSTC_BOOTSTRAP lets our one stable toolchain provide them.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
    echo "== $target ($secs s)"
    cargo fuzz run "$target" -- -max_total_time="$secs" -max_len=65536
done
