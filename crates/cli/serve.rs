//! `coimail serve` and `coimail config check`.

use anyhow::{Context, Result};
use coimail_daemon::{Config, telemetry, tls};
use std::io::Write;
use std::path::Path;
use tokio::signal::unix::{SignalKind, signal};

pub async fn run(config_path: &Path, ready_file: Option<&Path>) -> Result<()> {
    private_umask();
    pin_mmap_threshold();
    let config = Config::load(config_path)?;
    telemetry::init(&config.log);
    let running = coimail_daemon::start(config).await?;
    if let Some(path) = ready_file {
        write_ready_file(path, running.addrs()).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break tracing::info!("SIGTERM received"),
            _ = int.recv() => break tracing::info!("SIGINT received"),
            _ = hup.recv() => match running.tls().reload() {
                Ok(done) => tracing::info!("SIGHUP: {done}"),
                Err(e) => tracing::error!("SIGHUP: certificate not reloaded: {e}"),
            },
        }
    }
    running.shutdown().await?;
    Ok(())
}

/// Everything the daemon creates (bodies, index, spool, keys, logs it
/// opens) is the mail of its users: readable by this user only, whatever
/// umask the service manager or shell handed down. The data dir's own mode
/// is checked when it is opened (`coimail_daemon::open_data`).
fn private_umask() {
    // SAFETY: umask only swaps the process's file mode mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Written whole under a temp name, then renamed: a reader never sees half a file.
fn write_ready_file(path: &Path, addrs: &coimail_daemon::BoundAddrs) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(addrs)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub fn check(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    // With ACME on, the files are optional: the issued certificate serves until they exist.
    if config.tls.cert.exists() || (config.listen.needs_tls() && !config.tls.acme.enabled) {
        tls::server_config(&config.tls.cert, &config.tls.key)?;
    }
    let l = &config.listen;
    println!("{}: OK", config_path.display());
    println!("  hostname   {}", config.server.hostname);
    println!("  data dir   {}", config.server.data_dir.display());
    for (name, addrs) in [
        ("imap", &l.imap),
        ("imaps", &l.imaps),
        ("smtp", &l.smtp),
        ("submission", &l.submission),
        ("submissions", &l.submissions),
    ] {
        let shown: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        println!("  {name:<11}{}", if shown.is_empty() { "off".into() } else { shown.join(", ") });
    }
    Ok(())
}

/// Every login verifies an argon2 hash with a 19 MiB work buffer. glibc
/// raises its mmap threshold to the size of the largest freed mmap'd block,
/// so after the first login those buffers come from the heap, and the small
/// allocations of long-lived IMAP sessions pin the freed pages: about 8 MB of
/// resident memory per logged-in connection (measured with 200 IDLE
/// sessions). A fixed threshold keeps large buffers in mmap, returned to the
/// kernel on free.
fn pin_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread starts allocating heavily.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
