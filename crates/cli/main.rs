//! The `coimail` binary: parses the command line and hands each command to
//! its file. The only place `anyhow` is used.

mod admin_cmd;
mod chatmail;
mod dclogin;
mod dns;
mod dns_check;
mod health;
mod init;
mod queue;
mod serve;
mod store_cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where `init` puts things and where every other command looks by default.
pub const DEFAULT_DIR: &str = "coimail-data";

#[derive(Parser)]
#[command(name = "coimail", version, about = "COI-enabled IMAP/SMTP mail server")]
struct Cli {
    /// Config file.
    #[arg(long, short, global = true, env = "COIMAIL_CONFIG", default_value = "coimail-data/coimail.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server until SIGTERM or SIGINT.
    Serve {
        /// Write the bound addresses as JSON to this file once serving (for scripts and tests).
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Create a config, a data dir and a self-signed certificate for a first run.
    Init {
        /// The mail domain this server receives for.
        #[arg(long)]
        domain: String,
        /// Directory for the config, data and certificate.
        #[arg(long, default_value = DEFAULT_DIR)]
        data: PathBuf,
        /// Host name of this server (default: mail.<domain>).
        #[arg(long)]
        hostname: Option<String>,
    },
    /// Manage users.
    #[command(subcommand)]
    User(admin_cmd::UserCmd),
    /// Manage aliases.
    #[command(subcommand)]
    Alias(admin_cmd::AliasCmd),
    /// Manage the domains this server receives mail for.
    #[command(subcommand)]
    Domain(admin_cmd::DomainCmd),
    /// Print the DNS records to publish for every domain (or DOMAIN); `dns check` resolves them.
    Dns(dns::DnsArgs),
    /// Manage the DKIM keys that sign outgoing mail.
    #[command(subcommand)]
    Dkim(admin_cmd::DkimCmd),
    /// TLS certificates: status, reload of the files, ACME renewal.
    #[command(subcommand)]
    Tls(admin_cmd::TlsCmd),
    /// Inspect and drive the outbound queue.
    #[command(subcommand)]
    Queue(queue::QueueCmd),
    /// Chat Over IMAP: a user's COI settings and push subscriptions.
    #[command(subcommand)]
    Coi(CoiCmd),
    /// Chatmail mode: the invite that makes accounts from Delta Chat.
    #[command(subcommand)]
    Chatmail(ChatmailCmd),
    /// Check the config file and exit.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Maintain the message store.
    #[command(subcommand)]
    Store(store_cmd::StoreCmd),
    /// Ask the running daemon's /healthz (the metrics listener) whether it
    /// can take mail; exit status 0 only if so (Docker HEALTHCHECK).
    Health {
        /// Where the metrics listener is (default: the first `[listen] metrics`).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
    },
}

#[derive(Subcommand)]
enum CoiCmd {
    /// Show a user's COI configuration and WebPush subscriptions (JSON).
    Status {
        /// The user's address.
        address: String,
    },
}

#[derive(Subcommand)]
enum ChatmailCmd {
    /// Print the DCACCOUNT: URI and QR code that create a new account when Delta Chat scans them.
    Invite {
        /// Host name in the URL (default: server.hostname); it must be on the HTTPS certificate.
        #[arg(long)]
        host: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Load and validate the config, and the TLS files it names.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coimail: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { ready_file } => serve::run(&cli.config, ready_file.as_deref()).await,
            Command::Init { domain, data, hostname } => init::run(&domain, &data, hostname).await,
            Command::User(cmd) => admin_cmd::user(&cli.config, cmd).await,
            Command::Alias(cmd) => admin_cmd::run(&cli.config, cmd.into_request()).await,
            Command::Domain(cmd) => admin_cmd::run(&cli.config, cmd.into_request()).await,
            Command::Dns(args) => dns::run(&cli.config, args).await,
            Command::Dkim(cmd) => admin_cmd::run(&cli.config, cmd.into_request()).await,
            Command::Tls(cmd) => admin_cmd::run(&cli.config, cmd.into_request()).await,
            Command::Queue(cmd) => queue::run(&cli.config, cmd).await,
            Command::Coi(CoiCmd::Status { address }) => {
                admin_cmd::run(&cli.config, coimail_daemon::admin::AdminRequest::CoiStatus { address }).await
            }
            Command::Chatmail(ChatmailCmd::Invite { host }) => chatmail::invite(&cli.config, host.as_deref()),
            Command::Config(ConfigCmd::Check) => serve::check(&cli.config),
            Command::Store(cmd) => store_cmd::run(&cli.config, cmd).await,
            Command::Health { addr } => health::run(&cli.config, addr),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coimail: {e:#}");
            ExitCode::FAILURE
        }
    }
}
