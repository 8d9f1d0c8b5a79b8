//! Delta Chat tests on real names and ports: a network and mount namespace
//! of the test's own (`unshare --net --mount`), loopback up, the test's
//! hosts file over /etc/hosts (a private mount: the host's stays as it is),
//! and `coimail serve` on the ports the test's config names, ready before
//! the test's own script runs.

use std::path::Path;
use std::time::Duration;

/// Why this machine cannot run a Delta Chat test in a network and mount
/// namespace of its own (real names and ports), if it cannot.
pub fn unavailable() -> Option<String> {
    if std::env::var("COIMAIL_EXTERNAL").as_deref() != Ok("1") {
        return Some("run tests/run.sh (COIMAIL_EXTERNAL=1) for Delta Chat".into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for a network and mount namespace (unshare)".into());
    }
    let probe = std::process::Command::new("unshare").args(["--net", "--mount", "true"]).output();
    match probe {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!("unshare --net --mount fails here: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => Some(format!("no unshare: {e}")),
    }
}

/// What every test's script starts with: the namespace set up and coimail
/// (`$DIR/coimail.toml`) serving, its log in `$DIR/server.log`.
const PROLOGUE: &str = r#"set -eu
ip link set lo up
mount --bind "$DIR/hosts" /etc/hosts
# Killed with this shell, however it ends: nothing outlives the namespace's test.
setpriv --pdeathsig KILL "$COIMAIL" --config "$DIR/coimail.toml" serve --ready-file "$DIR/ready.json" 2>"$DIR/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
i=0
while [ ! -f "$DIR/ready.json" ]; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 $server 2>/dev/null; then echo "coimail did not start"; cat "$DIR/server.log"; exit 1; fi
    sleep 0.1
done
"#;

/// Runs `script` (sh) in a fresh namespace after [`PROLOGUE`], with `DIR`
/// (which holds `hosts` and `coimail.toml`), `COIMAIL`, `PYTHON` and `env`
/// set. Fails the test if it takes over 5 minutes or exits non-zero; returns
/// its stdout and the server's log.
pub async fn run(dir: &Path, script: &str, env: &[(&str, &str)]) -> (String, String) {
    let python = std::env::var("COIMAIL_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut cmd = tokio::process::Command::new("unshare");
    cmd.args(["--net", "--mount", "sh", "-c", &format!("{PROLOGUE}{script}")])
        .env("DIR", dir)
        .env("COIMAIL", super::server::coimail_bin())
        .env("PYTHON", python)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("the namespace's test took over 5 minutes")
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    assert!(out.status.success(), "failed:\n{stdout}\n{stderr}\nserver log:\n{log}");
    (stdout, log)
}
