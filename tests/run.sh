#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the real third-party clients
# the tests drive (when missing), then formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
    else
        echo "please install: ${need_apt[*]}" >&2
        exit 1
    fi
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
