//! Server CPU time during the load phase, from /proc: what each server spent
//! per command, independent of what else the machine was doing (commands/s
//! moves with other load on a shared 2-core machine; CPU per command much less).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// Whose CPU time to count.
#[derive(Clone, Copy)]
pub enum Server {
    /// coimail in this process: its runtime's threads (`coimail`, which
    /// includes its blocking pool) and sled's I/O threads.
    InProcess,
    /// Dovecot: the master and every process below it, plus what the master
    /// collected from children that exited (imap processes after LOGOUT).
    ProcessTree(u32),
}

struct Window {
    server: Server,
    start: Option<(Duration, Duration)>,
    spent: Option<(Duration, Duration)>,
}

static WINDOW: Mutex<Option<Window>> = Mutex::new(None);

/// Counts `server` in the next load window.
pub fn watch(server: Server) {
    *WINDOW.lock().unwrap() = Some(Window { server, start: None, spent: None });
}

/// The stress tester's `on_load` hook.
pub fn on_load(started: bool) {
    let mut w = WINDOW.lock().unwrap();
    if let Some(w) = w.as_mut() {
        let now = (cpu(w.server), tester());
        if started {
            w.start = Some(now);
        } else if let Some(s) = w.start {
            w.spent = Some((now.0.saturating_sub(s.0), now.1.saturating_sub(s.1)));
        }
    }
}

/// CPU time of the server and of the tester in the last window, if one was measured.
pub fn spent() -> Option<(Duration, Duration)> {
    WINDOW.lock().unwrap().take().and_then(|w| w.spent)
}

fn ticks() -> f64 {
    // SAFETY: sysconf only reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// (comm, fields after the comm) of a /proc stat file.
fn stat(path: &Path) -> Option<(String, Vec<u64>)> {
    let s = std::fs::read_to_string(path).ok()?;
    let (head, rest) = s.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    // Field 3 (state) is a letter; keep the numbers after it, from ppid on.
    let nums = rest.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    Some((comm, nums))
}

// Offsets into `stat`'s numbers (man 5 proc, fields 4 and 14-17).
const PPID: usize = 0;
const UTIME: usize = 10;
const STIME: usize = 11;
const CUTIME: usize = 12;
const CSTIME: usize = 13;

/// The load generator's own threads (its runtime, named `tester`).
fn tester() -> Duration {
    ticks_to_time(own_threads(|comm| comm.starts_with("tester")))
}

/// CPU ticks of this process's threads whose name `pick` accepts.
fn own_threads(pick: impl Fn(&str) -> bool) -> u64 {
    let mut t = 0u64;
    for e in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        if let Some((comm, n)) = stat(&e.path().join("stat"))
            && pick(&comm)
        {
            t += n[UTIME] + n[STIME];
        }
    }
    t
}

fn ticks_to_time(t: u64) -> Duration {
    Duration::from_secs_f64(t as f64 / ticks())
}

fn cpu(server: Server) -> Duration {
    let mut t = 0u64;
    match server {
        Server::InProcess => t = own_threads(|comm| comm.starts_with("coimail") || comm.starts_with("sled-")),
        Server::ProcessTree(master) => {
            let procs: Vec<(u32, Vec<u64>)> = std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                    Some((pid, stat(&e.path().join("stat"))?.1))
                })
                .collect();
            let mut tree = vec![master];
            let mut i = 0;
            while i < tree.len() {
                let parent = tree[i];
                tree.extend(procs.iter().filter(|(_, n)| n[PPID] == parent as u64).map(|(p, _)| *p));
                i += 1;
            }
            for (pid, n) in &procs {
                if tree.contains(pid) {
                    t += n[UTIME] + n[STIME];
                    if *pid == master {
                        t += n[CUTIME] + n[CSTIME];
                    }
                }
            }
        }
    }
    ticks_to_time(t)
}
