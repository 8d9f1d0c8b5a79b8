//! `imap-stress`: run the stress tester against a server and print the report.
//! Exits 1 when it found violations, 2 on bad usage or failed set-up.
//!
//! ```text
//! imap-stress --addr 127.0.0.1:143 --user alice@example.org:secret [--user ...]
//!             [--users N --user-format 'stress{}@example.org' --password P]
//!             [--clients 10] [--seconds 10] [--seed 1] [--logout]
//!             [--seed-messages 20] [--mailbox-target 60] [--idle-ms 1-10] [--no-clean] [--trace]
//! ```

use coimail_imap_stress::{Config, run};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: imap-stress --addr HOST:PORT (--user NAME:PASSWORD ... | --users N --user-format FMT --password P) \
[--clients N] [--seconds S] [--seed N] [--logout] [--seed-messages N] [--mailbox-target N] [--idle-ms MIN-MAX] [--no-clean] [--trace]";

fn parse_args(args: &[String]) -> Result<Config, String> {
    let mut addr = None;
    let mut accounts = Vec::new();
    let (mut users, mut format, mut password) = (0usize, "stress{}@example.org".to_owned(), None::<String>);
    let mut cfg = Config::new(std::net::SocketAddr::from(([127, 0, 0, 1], 143)), Vec::new());
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|_| format!("{arg}: not a number: {v}"));
        match arg.as_str() {
            "--addr" => {
                let v = value("--addr")?;
                addr = Some(
                    std::net::ToSocketAddrs::to_socket_addrs(&v)
                        .map_err(|e| format!("--addr {v}: {e}"))?
                        .next()
                        .ok_or(format!("--addr {v}: no address"))?,
                );
            }
            "--user" => {
                let v = value("--user")?;
                let (u, p) = v.rsplit_once(':').ok_or("--user takes NAME:PASSWORD")?;
                accounts.push((u.to_owned(), p.to_owned()));
            }
            "--users" => users = number(value("--users")?)? as usize,
            "--user-format" => format = value("--user-format")?,
            "--password" => password = Some(value("--password")?),
            "--clients" => cfg.clients = number(value("--clients")?)? as usize,
            "--seconds" => cfg.duration = Duration::from_secs(number(value("--seconds")?)?),
            "--seed" => cfg.seed = number(value("--seed")?)?,
            "--seed-messages" => cfg.seed_messages = number(value("--seed-messages")?)? as usize,
            "--mailbox-target" => cfg.mailbox_target = number(value("--mailbox-target")?)? as usize,
            "--idle-ms" => {
                let v = value("--idle-ms")?;
                let (lo, hi) = v.split_once('-').ok_or("--idle-ms takes MIN-MAX")?;
                let (lo, hi) = (number(lo.to_owned())?, number(hi.to_owned())?);
                if lo > hi {
                    return Err(format!("--idle-ms {v}: MIN is above MAX"));
                }
                cfg.idle_millis = (lo, hi);
            }
            "--logout" => cfg.logout = true,
            "--no-clean" => cfg.clean = false,
            "--trace" => cfg.trace = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if users > 0 {
        let p = password.ok_or("--users needs --password")?;
        accounts.extend((0..users).map(|i| (format.replace("{}", &i.to_string()), p.clone())));
    }
    cfg.addr = addr.ok_or(format!("--addr is required\n{USAGE}"))?;
    cfg.accounts = accounts;
    Ok(cfg)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(report) => {
            print!("{report}");
            if report.violations() > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
