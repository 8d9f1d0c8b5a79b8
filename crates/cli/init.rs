//! `coimail init`: a config, a data dir, a self-signed certificate and the
//! domain's DKIM keys, so that `coimail serve` runs with nothing else to do.

use anyhow::{Context, Result, bail};
use coimail_daemon::{Config, tls};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

const SAMPLE: &str = include_str!("../../config/coimail.toml");

pub async fn run(domain: &str, dir: &Path, hostname: Option<String>) -> Result<()> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() || !domain.contains('.') {
        bail!("--domain must be a mail domain like example.org");
    }
    let hostname = hostname.unwrap_or_else(|| format!("mail.{domain}"));
    let config_path = dir.join("coimail.toml");
    if config_path.exists() {
        println!(
            "{} exists already; nothing changed. Start with: coimail serve --config {}",
            config_path.display(),
            config_path.display()
        );
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;

    // The sample with our host name and a data dir beside the config.
    let text = SAMPLE.replacen("hostname = \"mail.example.org\"", &format!("hostname = {hostname:?}"), 1);
    let mut config = Config::parse(&text).map_err(|e| anyhow::anyhow!("built-in sample config: {e}"))?;
    config.resolve_paths(dir);
    config.validate()?;

    let names = vec![hostname.clone(), "localhost".to_owned()];
    if !config.tls.cert.exists() {
        tls::write_self_signed(&names, &config.tls.cert, &config.tls.key, false)?;
    }
    // Add the domain now so `coimail user add` works right away.
    let (store, directory) = coimail_daemon::open_data(&config).await?;
    if !directory.is_local_domain(&domain)? {
        directory.add_domain(&domain).await?;
    }
    drop(directory);
    let dkim = coimail_delivery::dkim::KeyStore::new(config.dkim_dir());
    let dkim_domain = domain.clone();
    tokio::task::spawn_blocking(move || dkim.ensure(&dkim_domain, coimail_delivery::now())).await??;
    store.close().await?;
    std::fs::write(&config_path, text).with_context(|| format!("writing {}", config_path.display()))?;

    let cfg = config_path.display();
    println!("Created {cfg} for {domain} (host {hostname}), data in {}.", config.server.data_dir.display());
    println!(
        "A self-signed certificate is in {}; replace it with a real one for production.",
        config.tls.cert.display()
    );
    println!();
    println!("Next:");
    println!("  coimail --config {cfg} serve");
    println!("  coimail --config {cfg} user add you@{domain}");
    println!();
    println!("Going live: publish the DNS records (MX, SPF, DKIM, DMARC, ...) this prints,");
    println!("then check them; docs/GOING-LIVE.md has ports, certificates and the firewall:");
    println!("  coimail --config {cfg} dns");
    println!("  coimail --config {cfg} dns check");
    Ok(())
}
