//! `coimail user|alias|domain|dkim|queue ...`: sent to the running daemon over its admin
//! socket, or carried out on the store directly when no daemon runs.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use coimail_daemon::Config;
use coimail_daemon::admin::{self, AdminRequest, Secret};
use std::io::{BufRead, IsTerminal};
use std::path::Path;

#[derive(Subcommand)]
pub enum UserCmd {
    /// Add a user. The password is prompted for, or read as one line from stdin.
    Add {
        address: String,
        /// Storage limit in bytes.
        #[arg(long)]
        quota: Option<u64>,
    },
    /// Delete a user and all its mail.
    Del { address: String },
    /// Change a user's password (prompted for, or one line from stdin).
    Passwd { address: String },
    /// List users.
    List,
}

#[derive(Subcommand)]
pub enum AliasCmd {
    /// Deliver mail for ALIAS to the user TARGET.
    Add {
        alias: String,
        target: String,
    },
    Del {
        alias: String,
    },
    List,
}

#[derive(Subcommand)]
pub enum DomainCmd {
    /// Receive mail for DOMAIN; makes its DKIM keys (publish them: coimail dns DOMAIN).
    Add {
        domain: String,
    },
    /// Delete a domain that has no users or aliases left.
    Del {
        domain: String,
    },
    List,
    /// Deliver mail for unknown addresses of DOMAIN to USER (omit USER to stop).
    CatchAll {
        domain: String,
        user: Option<String>,
    },
}

/// DKIM keys: publish a new pair before it signs, keep the old one
/// published until mail it signed has arrived (docs/GOING-LIVE.md).
#[derive(Subcommand)]
pub enum DkimCmd {
    /// Make a `next` key pair for DOMAIN to publish (a first, current pair if it has none).
    Rotate { domain: String },
    /// Sign with the `next` pair from now on; the old pair stays published until `retire`.
    Activate { domain: String },
    /// Delete the pairs `activate` replaced (then remove their DNS records).
    Retire { domain: String },
    /// Show each domain's selectors and what they are used for.
    List { domain: Option<String> },
}

/// The certificates the listeners serve.
#[derive(Subcommand)]
pub enum TlsCmd {
    /// Each certificate served (names, issuer, expiry, file or ACME) and the next ACME renewal.
    Status,
    /// Read the [tls] certificate files again (as SIGHUP does); open connections keep theirs.
    Reload,
    /// Get a new ACME certificate now instead of at the next renewal.
    Renew,
}

impl TlsCmd {
    pub fn into_request(self) -> AdminRequest {
        match self {
            TlsCmd::Status => AdminRequest::TlsStatus,
            TlsCmd::Reload => AdminRequest::TlsReload,
            TlsCmd::Renew => AdminRequest::TlsRenew,
        }
    }
}

impl DkimCmd {
    pub fn into_request(self) -> AdminRequest {
        match self {
            DkimCmd::Rotate { domain } => AdminRequest::DkimRotate { domain },
            DkimCmd::Activate { domain } => AdminRequest::DkimActivate { domain },
            DkimCmd::Retire { domain } => AdminRequest::DkimRetire { domain },
            DkimCmd::List { domain } => AdminRequest::DkimList { domain },
        }
    }
}

impl UserCmd {
    pub fn into_request(self) -> Result<AdminRequest> {
        Ok(match self {
            UserCmd::Add { address, quota } => {
                AdminRequest::UserAdd { password: read_password(&address)?, address, quota_bytes: quota }
            }
            UserCmd::Del { address } => AdminRequest::UserDel { address },
            UserCmd::Passwd { address } => AdminRequest::UserPasswd { password: read_password(&address)?, address },
            UserCmd::List => AdminRequest::UserList,
        })
    }
}

impl AliasCmd {
    pub fn into_request(self) -> AdminRequest {
        match self {
            AliasCmd::Add { alias, target } => AdminRequest::AliasAdd { alias, target },
            AliasCmd::Del { alias } => AdminRequest::AliasDel { alias },
            AliasCmd::List => AdminRequest::AliasList,
        }
    }
}

impl DomainCmd {
    pub fn into_request(self) -> AdminRequest {
        match self {
            DomainCmd::Add { domain } => AdminRequest::DomainAdd { domain },
            DomainCmd::Del { domain } => AdminRequest::DomainDel { domain },
            DomainCmd::List => AdminRequest::DomainList,
            DomainCmd::CatchAll { domain, user } => AdminRequest::DomainCatchAll { domain, target: user },
        }
    }
}

/// Passwords never come from argv (visible in `ps` and shell history):
/// a prompt on a terminal, else the first line of stdin.
fn read_password(address: &str) -> Result<Secret> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {address}: "))?;
        let again = rpassword::prompt_password("Repeat it: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        bail!("empty password");
    }
    Ok(Secret(password))
}

pub async fn run(config_path: &Path, req: AdminRequest) -> Result<()> {
    for l in request(config_path, req).await? {
        println!("{l}");
    }
    Ok(())
}

/// Carries out `req` (through the daemon if one runs) and returns the lines of its reply.
pub async fn request(config_path: &Path, req: AdminRequest) -> Result<Vec<String>> {
    let config = Config::load(config_path)?;
    let reply = match admin::call(&config.admin_socket(), &req).await {
        Ok(Some(reply)) => reply,
        Ok(None) => offline(&config, req).await?,
        Err(e) => return Err(e).context(format!("talking to the daemon at {}", config.admin_socket().display())),
    };
    reply.or_else(|msg| bail!("{msg}"))
}

/// No daemon: open the store ourselves, then close it cleanly.
async fn offline(config: &Config, req: AdminRequest) -> Result<admin::AdminReply> {
    let (store, directory) = coimail_daemon::open_data(config).await?;
    let ctx = admin::AdminContext {
        directory,
        queue: coimail_delivery::Queue::new(store.clone()),
        coi: coimail_coi::Coi::new(store.clone()),
        dkim: coimail_delivery::dkim::Dkim::new(coimail_delivery::dkim::KeyStore::new(config.dkim_dir())),
        tls: coimail_daemon::certs::TlsHandle::offline(config),
    };
    let reply = admin::execute(&ctx, req).await;
    drop(ctx);
    store.close().await?;
    Ok(reply)
}
