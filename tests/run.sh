#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the real third-party clients
# the tests drive (when missing), then formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
command -v mbsync >/dev/null || need_apt+=(isync)   # mbsync, for tests/imap_interop.rs
# SMTP clients for tests/smtp_interop.rs: swaks (+ TLS for its Perl) and
# Postfix's smtp-source. Postfix is installed unconfigured ("No
# configuration"), so nothing starts and no port is taken.
command -v swaks >/dev/null || need_apt+=(swaks)
perl -MIO::Socket::SSL -e1 2>/dev/null || need_apt+=(libio-socket-ssl-perl)
[ -x /usr/sbin/smtp-source ] || command -v smtp-source >/dev/null || need_apt+=(postfix)
# dkimpy: an independent DKIM verifier for tests/dkim.rs (PyNaCl for Ed25519),
# and the signer (dkimsign, arcsign; arcsign needs authres) for
# tests/inbound.rs, in Debian's own interpreter.
/usr/bin/python3 -c 'import dkim, nacl' 2>/dev/null || need_apt+=(python3-dkim python3-nacl)
[ -x /usr/bin/dkimsign ] || need_apt+=(python3-dkim)
/usr/bin/python3 -c 'import authres' 2>/dev/null || need_apt+=(python3-authres)
# Pebble, Let's Encrypt's test ACME server, for tests/acme.rs.
[ -x /usr/bin/pebble ] || need_apt+=(pebble)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ]; then
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    else
        echo "please install: ${need_apt[*]}" >&2
        exit 1
    fi
fi

# Delta Chat's core and its Python client come from PyPI, into a virtualenv
# of our own (target/ is ignored by git).
venv=target/test-venv
if [ ! -x "$venv/bin/deltachat-rpc-server" ]; then
    python3 -m venv "$venv" 2>/dev/null || {
        [ "$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$venv"
    }
    "$venv/bin/pip" install -q deltachat-rpc-server deltachat-rpc-client
fi
export COIMAIL_PYTHON="$PWD/$venv/bin/python" COIMAIL_EXTERNAL=1
export PATH="$PWD/$venv/bin:$PATH"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo ends on the last crate's doc-tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
