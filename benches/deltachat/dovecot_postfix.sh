#!/usr/bin/env bash
# Dovecot + Postfix as a chatmail relay's mail core, for the Delta Chat
# latency benchmark (benches/chatmail_latency.rs) next to coimail: Dovecot
# IMAP on 127.0.0.1:IMAP_PORT (no TLS, +XCHATMAIL as chatmail's Dovecot
# advertises it, maildir, LMTP), Postfix submission on 127.0.0.1:SUB_PORT
# with Dovecot SASL, local mail handed to Dovecot over LMTP; STARTTLS on
# both with the PEM files in TLS_CERT and TLS_KEY (the same certificate
# coimail uses in the benchmark). Without chatmail's filtermail hop (one
# more SMTP round trip per message on a real relay), so it is Dovecot +
# Postfix at their fastest.
#
#   benches/deltachat/dovecot_postfix.sh start DIR IMAP_PORT SUB_PORT PASSWORD USER...
#   benches/deltachat/dovecot_postfix.sh stop DIR
#
# Needs root, dovecot-imapd, dovecot-lmtpd and postfix (installed from
# Debian when missing). Prints "ready".
set -euo pipefail
cmd=${1:?usage}
dir=${2:?DIR}
if [ "$cmd" = stop ]; then
    # SIGTERM to master stops Postfix (what `postfix stop` does).
    pid="$dir/postfix-queue/pid/master.pid"
    [ -f "$pid" ] && kill "$(tr -d ' ' < "$pid")" 2>/dev/null || true
    [ -f "$dir/dovecot.conf" ] && dovecot -c "$dir/dovecot.conf" stop 2>/dev/null || true
    exit 0
fi
imap_port=${3:?IMAP_PORT}
sub_port=${4:?SUB_PORT}
password=${5:?PASSWORD}
shift 5

install() {
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
    apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}
command -v dovecot >/dev/null || install dovecot-imapd
[ -x /usr/lib/dovecot/lmtp ] || install dovecot-lmtpd
command -v postfix >/dev/null || install postfix

mkdir -p "$dir"/{run,state,home,postfix,postfix-queue,postfix-data}
chmod 755 "$dir"
mail_uid=$(id -u mail)
mail_gid=$(id -g mail)
chown mail:mail "$dir/home"
chown postfix "$dir/postfix-data"
: > "$dir/passwd"
for user in "$@"; do echo "$user:{PLAIN}$password" >> "$dir/passwd"; done
chmod 644 "$dir/passwd"

cat > "$dir/dovecot.conf" <<CONF
protocols = imap lmtp
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
ssl = yes
ssl_cert = <${TLS_CERT:?TLS_CERT}
ssl_key = <${TLS_KEY:?TLS_KEY}
disable_plaintext_auth = no
auth_mechanisms = plain login
imap_capability = +XCHATMAIL
first_valid_uid = $mail_uid
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = $dir/passwd
}
userdb {
  driver = static
  args = uid=$mail_uid gid=$mail_gid home=$dir/home/%u
}
protocol imap {
  mail_max_userip_connections = 100
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
CONF
dovecot -c "$dir/dovecot.conf" </dev/null >>"$dir/dovecot.log" 2>&1

cat > "$dir/postfix/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $dir/postfix-queue
data_directory = $dir/postfix-data
meta_directory = /etc/postfix
myhostname = mail.example.org
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
virtual_mailbox_domains = example.org
virtual_transport = lmtp:unix:$dir/run/lmtp
smtpd_sasl_type = dovecot
smtpd_sasl_path = $dir/run/auth-postfix
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_tls_security_level = may
smtpd_tls_chain_files = $TLS_KEY, $TLS_CERT
smtp_dns_support_level = disabled
alias_maps =
alias_database =
maillog_file = /dev/stdout
smtputf8_enable = no
CONF
cat > "$dir/postfix/master.cf" <<CONF
127.0.0.1:$sub_port inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF
postfix -c "$dir/postfix" check >>"$dir/postfix.log" 2>&1 || true
# In the foreground (in the background of this script): `postfix start`
# wants /etc/postfix/main.cf, which Debian's unconfigured package lacks.
setsid postfix -c "$dir/postfix" start-fg </dev/null >>"$dir/postfix.log" 2>&1 &
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$imap_port") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$sub_port") 2>/dev/null; then
        echo ready
        exit 0
    fi
    sleep 0.1
done
echo "dovecot/postfix did not start; see $dir/*.log" >&2
exit 1
