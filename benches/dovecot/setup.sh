#!/usr/bin/env bash
# A private Dovecot for the IMAP load benchmark (benches/imap_load.rs), next
# to coimail on the same machine: IMAP on 127.0.0.1:PORT, plaintext LOGIN
# allowed, sdbox mail under DIR, users in a passwd-file with ARGON2ID hashes
# made with coimail's argon2 parameters, an auth cache. fsync settings stay
# at Dovecot's defaults.
#
#   benches/dovecot/setup.sh start DIR PORT USERS PASSWORD [USER_FORMAT]
#   benches/dovecot/setup.sh stop DIR
#
# USER_FORMAT is a printf format for the user names (default
# stress%d@example.org, numbered from 0). Installs dovecot-imapd and argon2
# from Debian when missing (needs root). Prints "ready 127.0.0.1:PORT".
set -euo pipefail

cmd=${1:?usage: setup.sh start DIR PORT USERS PASSWORD [USER_FORMAT] | stop DIR}
dir=${2:?DIR}

if [ "$cmd" = stop ]; then
    if [ -f "$dir/dovecot.conf" ]; then
        dovecot -c "$dir/dovecot.conf" stop 2>/dev/null || true
    fi
    exit 0
fi
[ "$cmd" = start ] || { echo "unknown command $cmd" >&2; exit 2; }
port=${3:?PORT}
users=${4:?USERS}
password=${5:?PASSWORD}
format=${6:-stress%d@example.org}

install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}
command -v dovecot >/dev/null || install dovecot-imapd
# doveadm pw cannot choose argon2's memory cost (it uses libsodium's
# presets: m=65536,t=3), so the hashes come from the reference argon2 CLI
# with coimail's parameters: crates/directory/src/auth.rs uses
# Argon2::default() of argon2 0.6, i.e. argon2id v19, m=19456 KiB, t=2,
# p=1, 32-byte output. Dovecot verifies with the parameters in the hash.
command -v argon2 >/dev/null || install argon2

mkdir -p "$dir"/{run,state,home}
# Mail processes run as the Debian `mail` user; they must reach DIR.
chmod 755 "$dir"
mail_uid=$(id -u mail)
mail_gid=$(id -g mail)
chown mail:mail "$dir/home"

: > "$dir/passwd"
for ((i = 0; i < users; i++)); do
    user=$(printf "$format" "$i")
    salt=$(head -c 12 /dev/urandom | base64)
    hash=$(printf '%s' "$password" | argon2 "$salt" -id -t 2 -k 19456 -p 1 -l 32 -e)
    echo "$user:{ARGON2ID}$hash" >> "$dir/passwd"
done
chmod 644 "$dir/passwd"
first=$(head -n1 "$dir/passwd" | cut -d: -f2-)
doveadm pw -t "$first" -p "$password" >/dev/null || { echo "dovecot cannot verify the argon2 hash" >&2; exit 1; }

cat > "$dir/dovecot.conf" <<CONF
# Written by benches/dovecot/setup.sh for the IMAP load benchmark.
protocols = imap
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# Logins of the same users again and again: cache the passdb lookups, and
# verify cached passwords in the auth workers (in parallel) rather than in
# the single auth process.
auth_cache_size = 10M
auth_cache_ttl = 1 hour
auth_cache_negative_ttl = 0
auth_cache_verify_password_with_worker = yes
first_valid_uid = $mail_uid
mail_location = sdbox:~/mail
passdb {
  driver = passwd-file
  args = $dir/passwd
}
userdb {
  driver = static
  args = uid=$mail_uid gid=$mail_gid home=$dir/home/%u
}
protocol imap {
  # Default 10: the benchmark's clients share one account from one IP.
  mail_max_userip_connections = 1000
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
CONF

# Its own output goes to the log: a daemon holding our stdout would keep
# a caller reading it (a pipe) waiting forever.
dovecot -c "$dir/dovecot.conf" </dev/null >>"$dir/dovecot.log" 2>&1
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "ready 127.0.0.1:$port"
        exit 0
    fi
    sleep 0.1
done
echo "dovecot did not start; see $dir/dovecot.log" >&2
exit 1
