#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark reports failures by panicking
//! IMAP load, coimail next to Dovecot: the state-tracking stress tester
//! (crates/imap-stress) runs the same workload with the same seed against
//! each server on this machine and prints commands/s, the ratio
//! coimail/Dovecot, each server's CPU time per command during the load
//! (from /proc, `imap_load/cpu.rs`; it moves much less than commands/s
//! with whatever else the machine runs), the tester's own CPU per command,
//! latency p50/p99 and the violations it found.
//!
//! Scenarios:
//! - a: 10 clients on one mailbox, no LOGOUT;
//! - b: 50 clients over 100 accounts, no LOGOUT;
//! - c: 10 clients on one mailbox, LOGOUT and LOGIN in the mix.
//!
//! coimail runs in-process on a runtime of its own (release build, sled
//! index, fsync'd body files, like `coimail serve`); Dovecot from Debian is
//! set up and started by `benches/dovecot/setup.sh` (sdbox, its default
//! fsync settings, ARGON2ID hashes with coimail's parameters, auth cache).
//!
//! Run: `cargo bench --bench imap_load` (all scenarios, two rounds of 15 s
//! per server, in the order coimail, Dovecot, Dovecot, coimail; the table
//! sums the rounds, and each round's ratio is printed below it). Options
//! (or env IMAP_LOAD_SECONDS, IMAP_LOAD_SCENARIO): `-- --seconds N
//! --rounds N --scenario a|b|c|all --seed N --no-dovecot`;
//! `-- --stress-minutes 10 [--scenario a]`: the long run, coimail only.
//! Prints the full report of each run with `--verbose`. Asserts nothing.

// Only its loopback config is used here; the SMTP helpers serve the other benches.
#[allow(dead_code)]
mod common;
#[path = "imap_load/cpu.rs"]
mod cpu;
use coimail_imap_stress::{Config, Report};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PASSWORD: &str = "bench password";
const ACCOUNTS: usize = 100;

/// CPU time of the server and of the tester over the load (`cpu::spent`).
type Spent = Option<(Duration, Duration)>;

struct Options {
    seconds: u64,
    scenarios: Vec<char>,
    seed: u64,
    dovecot: bool,
    verbose: bool,
    /// Runs per server and scenario, alternating which server goes first.
    rounds: u32,
}

fn options() -> Options {
    let env = |k: &str| std::env::var(k).ok();
    let mut o = Options {
        seconds: env("IMAP_LOAD_SECONDS").and_then(|s| s.parse().ok()).unwrap_or(15),
        scenarios: env("IMAP_LOAD_SCENARIO").map(|s| scenarios(&s)).unwrap_or_else(|| vec!['a', 'b', 'c']),
        seed: 1,
        dovecot: true,
        verbose: false,
        rounds: 2,
    };
    let args: Vec<String> = std::env::args().collect();
    for (i, a) in args.iter().enumerate() {
        let next = args.get(i + 1);
        match (a.as_str(), next) {
            ("--seconds", Some(n)) => o.seconds = n.parse().expect("--seconds N"),
            ("--stress-minutes", Some(n)) => {
                o.seconds = 60 * n.parse::<u64>().expect("--stress-minutes N");
                o.dovecot = false;
                o.rounds = 1;
                if !args.iter().any(|a| a == "--scenario") && env("IMAP_LOAD_SCENARIO").is_none() {
                    o.scenarios = vec!['a'];
                }
            }
            ("--scenario", Some(s)) => o.scenarios = scenarios(s),
            ("--seed", Some(n)) => o.seed = n.parse().expect("--seed N"),
            ("--no-dovecot", _) => o.dovecot = false,
            ("--rounds", Some(n)) => o.rounds = n.parse::<u32>().expect("--rounds N").max(1),
            ("--verbose", _) => o.verbose = true,
            _ => {}
        }
    }
    o
}

fn scenarios(s: &str) -> Vec<char> {
    if s == "all" { vec!['a', 'b', 'c'] } else { s.chars().filter(|c| matches!(c, 'a' | 'b' | 'c')).collect() }
}

fn describe(s: char) -> &'static str {
    match s {
        'a' => "a: 10 clients, one mailbox",
        'b' => "b: 50 clients, 100 accounts",
        _ => "c: 10 clients, one mailbox, LOGIN/LOGOUT",
    }
}

fn user(i: usize) -> String {
    format!("stress{i}@example.org")
}

fn config(s: char, addr: SocketAddr, o: &Options) -> Config {
    let accounts = if s == 'b' { ACCOUNTS } else { 1 };
    let mut c = Config::new(addr, (0..accounts).map(|i| (user(i), PASSWORD.to_owned())).collect());
    c.clients = if s == 'b' { 50 } else { 10 };
    c.logout = s == 'c';
    c.duration = Duration::from_secs(o.seconds);
    c.seed = o.seed;
    c.on_load = Some(cpu::on_load);
    c
}

/// glibc keeps argon2's 19 MiB blocks on the heap otherwise (what `coimail serve` does at start).
fn pin_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Dovecot via benches/dovecot/setup.sh, stopped on drop.
struct Dovecot {
    dir: PathBuf,
    addr: SocketAddr,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/dovecot/setup.sh")
}

impl Dovecot {
    fn start(dir: &Path) -> Dovecot {
        // A free port: bind port 0, note it, let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = Command::new("bash")
            .arg(script())
            .args([
                "start",
                dir.to_str().unwrap(),
                &port.to_string(),
                &ACCOUNTS.to_string(),
                PASSWORD,
                "stress%d@example.org",
            ])
            .output()
            .expect("run benches/dovecot/setup.sh");
        assert!(
            out.status.success(),
            "dovecot setup failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Dovecot { dir: dir.to_owned(), addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }
}

impl Dovecot {
    fn master_pid(&self) -> u32 {
        let f = self.dir.join("run/master.pid");
        std::fs::read_to_string(&f)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {}", f.display()))
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).args(["stop", self.dir.to_str().unwrap_or("")]).status();
    }
}

fn kinds(r: &Report) -> String {
    let v: Vec<String> = r.findings.violations.iter().map(|(k, n)| format!("{k} {n}")).collect();
    if v.is_empty() { "-".into() } else { v.join(", ") }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let o = options();
    pin_mmap_threshold();
    let dir = tempfile::tempdir().unwrap();

    // coimail on its own runtime, as `coimail serve` runs it.
    // Named threads, so a profile tells the server's work from the tester's.
    let server_rt = tokio::runtime::Builder::new_multi_thread().thread_name("coimail").enable_all().build().unwrap();
    let running = server_rt.block_on(async {
        let mut c = common::loopback_config(dir.path());
        // Every client connects from 127.0.0.1, 50 of them at once in (b).
        c.imap.max_connections_per_ip = 500;
        c.imap.max_unauthenticated_per_ip = 500;
        c.imap.max_connections_per_user = 500;
        let running = coimail_daemon::start(c).await.unwrap();
        running.directory().add_domain("example.org").await.unwrap();
        for i in 0..ACCOUNTS {
            running.directory().add_user(&user(i), PASSWORD, None).await.unwrap();
        }
        running
    });
    let coimail = running.addrs().imap[0];
    let dovecot = o.dovecot.then(|| Dovecot::start(&dir.path().join("dovecot")));

    let tester_rt = tokio::runtime::Builder::new_multi_thread().thread_name("tester").enable_all().build().unwrap();
    let mut rows = Vec::new();
    for &s in &o.scenarios {
        let mut servers = vec![("coimail", coimail)];
        if let Some(d) = &dovecot {
            servers.push(("dovecot", d.addr));
        }
        // Rounds in the order A B B A ...: the machine's speed drifts by
        // ±10% over a minute, and alternating cancels a steady drift
        // instead of handing it to whichever server runs second.
        // In the order of `servers` (the first round's): coimail first.
        let mut totals: Vec<(&str, Report, Spent)> = Vec::new();
        let mut per_round = Vec::new();
        for round in 0..o.rounds {
            let mut order = servers.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            let mut rates = Vec::new();
            for (name, addr) in order {
                eprintln!("{} on {name}, round {} of {}, {} s ...", describe(s), round + 1, o.rounds, o.seconds);
                cpu::watch(match &dovecot {
                    Some(d) if name == "dovecot" => cpu::Server::ProcessTree(d.master_pid()),
                    _ => cpu::Server::InProcess,
                });
                let report = tester_rt.block_on(coimail_imap_stress::run(config(s, addr, &o))).expect("stress run");
                // Violations on coimail are bugs: show their examples unasked.
                if o.verbose || (name == "coimail" && report.violations() > 0) {
                    eprintln!("{report}");
                }
                let spent = cpu::spent();
                rates.push((name, report.commands_per_sec()));
                match totals.iter_mut().find(|(n, ..)| *n == name) {
                    Some((_, total, cpu)) => {
                        total.merge(report);
                        *cpu = cpu.zip(spent).map(|(a, b)| (a.0 + b.0, a.1 + b.1));
                    }
                    None => totals.push((name, report, spent)),
                }
            }
            let rate = |n: &str| rates.iter().find(|(m, _)| *m == n).map(|(_, r)| *r);
            if let Some((c, d)) = rate("coimail").zip(rate("dovecot")).filter(|(_, d)| *d > 0.0) {
                per_round.push(c / d);
            }
        }
        rows.push((s, totals, per_round));
    }

    println!(
        "\nIMAP load, {} round(s) of {} s per server, seed {} (commands/s over all clients and rounds; latency per command)",
        o.rounds, o.seconds, o.seed
    );
    println!(
        "| scenario | server | commands/s | coimail/dovecot | server CPU µs/command | CPU: dovecot/coimail | tester CPU µs/command | p50 ms | p99 ms | violations |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    // Server CPU per command over the load window (benches/imap_load/cpu.rs).
    let per_command =
        |r: &Report, spent: Option<Duration>| spent.map(|c| c.as_secs_f64() * 1e6 / (r.commands() as f64).max(1.0));
    for (s, results, _) in &rows {
        let dovecot = results.iter().find(|(n, ..)| *n == "dovecot");
        let dovecot_rate = dovecot.map(|(_, r, _)| r.commands_per_sec());
        let dovecot_cpu = dovecot.and_then(|(_, r, c)| per_command(r, c.map(|c| c.0)));
        for (name, r, spent) in results {
            let cpu = per_command(r, spent.map(|c| c.0));
            let tester = per_command(r, spent.map(|c| c.1));
            let (ratio, cpu_ratio) = match *name {
                "coimail" => (
                    dovecot_rate.filter(|d| *d > 0.0).map(|d| format!("{:.2}", r.commands_per_sec() / d)),
                    dovecot_cpu.zip(cpu).filter(|(_, c)| *c > 0.0).map(|(d, c)| format!("{:.2}", d / c)),
                ),
                _ => (None, None),
            };
            println!(
                "| {} | {name} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
                describe(*s),
                r.commands_per_sec(),
                ratio.unwrap_or_default(),
                cpu.map(|c| format!("{c:.0}")).unwrap_or_default(),
                cpu_ratio.unwrap_or_default(),
                tester.map(|c| format!("{c:.0}")).unwrap_or_default(),
                ms(r.p50()),
                ms(r.p99()),
                r.violations()
            );
        }
    }
    if rows.iter().any(|(_, _, r)| r.len() > 1) {
        println!("\ncoimail/dovecot in each round:");
        for (s, _, per_round) in &rows {
            let each: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
            println!("  {}: {}", describe(*s), each.join(", "));
        }
    }
    println!("\nviolations by kind:");
    for (s, results, _) in &rows {
        for (name, r, _) in results {
            println!("  {} on {name}: {}", describe(*s), kinds(r));
        }
    }
    drop(dovecot);
    server_rt.block_on(running.shutdown()).unwrap();
}
