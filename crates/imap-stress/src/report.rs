//! What a run found and how fast it went: violations by kind (with the
//! first examples of each), "acceptable but worse" notices, command counts
//! and latency histograms. Each session keeps its own and they are merged at
//! the end, so the hot path takes no lock.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// How many examples of one kind are kept (the count goes on).
const EXAMPLES_PER_KIND: usize = 5;

/// One wrong answer: where, after which command, which line.
#[derive(Debug, Clone)]
pub struct Violation {
    pub kind: &'static str,
    /// `c<client>.<connection>` or `audit`.
    pub session: String,
    pub command: String,
    pub line: String,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {} | command: {} | line: {}", self.kind, self.session, self.detail, self.command, self.line)
    }
}

#[derive(Debug, Default, Clone)]
pub struct Findings {
    pub violations: BTreeMap<&'static str, u64>,
    pub notices: BTreeMap<&'static str, u64>,
    pub examples: Vec<Violation>,
    pub notice_examples: Vec<Violation>,
}

impl Findings {
    pub fn violation(&mut self, v: Violation) {
        let n = self.violations.entry(v.kind).or_default();
        *n += 1;
        if *n as usize <= EXAMPLES_PER_KIND {
            self.examples.push(v);
        }
    }

    /// Allowed by the RFCs but worse than the best behaviour (RFC 2180 §4.1.2: FETCH NO).
    pub fn notice(&mut self, v: Violation) {
        let n = self.notices.entry(v.kind).or_default();
        *n += 1;
        if *n as usize <= EXAMPLES_PER_KIND {
            self.notice_examples.push(v);
        }
    }

    pub fn total(&self) -> u64 {
        self.violations.values().sum()
    }

    pub fn merge(&mut self, other: Findings) {
        for v in other.examples {
            if self.examples.iter().filter(|e| e.kind == v.kind).count() < EXAMPLES_PER_KIND {
                self.examples.push(v);
            }
        }
        for v in other.notice_examples {
            if self.notice_examples.iter().filter(|e| e.kind == v.kind).count() < EXAMPLES_PER_KIND {
                self.notice_examples.push(v);
            }
        }
        for (k, n) in other.violations {
            *self.violations.entry(k).or_default() += n;
        }
        for (k, n) in other.notices {
            *self.notices.entry(k).or_default() += n;
        }
    }
}

/// Latencies in microseconds, log-linear buckets (64 per power of two above
/// 128 µs, so within ~1.6%).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    /// Summed latency in µs, for the mean.
    total_us: u64,
}

fn bucket(us: u64) -> usize {
    if us < 128 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros() as usize;
    let sub = ((us >> (e - 6)) & 63) as usize;
    128 + (e - 7) * 64 + sub
}

fn bucket_value(b: usize) -> u64 {
    if b < 128 {
        return b as u64;
    }
    let e = (b - 128) / 64 + 7;
    let sub = ((b - 128) % 64) as u64;
    (64 + sub) << (e - 6)
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let b = bucket(d.as_micros().min(u128::from(u64::MAX >> 8)) as u64);
        if self.buckets.len() <= b {
            self.buckets.resize(b + 1, 0);
        }
        self.buckets[b] += 1;
        self.count += 1;
        self.total_us += d.as_micros().min(u128::from(u64::MAX >> 8)) as u64;
    }

    /// The mean latency (the closed loop's rate is clients over this).
    pub fn mean(&self) -> Duration {
        Duration::from_micros(self.total_us.checked_div(self.count).unwrap_or(0))
    }

    /// The summed latency: the share of client time a command kind takes.
    pub fn total(&self) -> Duration {
        Duration::from_micros(self.total_us)
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `p` quantile (0..=1).
    pub fn quantile(&self, p: f64) -> Duration {
        let target = ((self.count as f64 - 1.0).max(0.0) * p).round() as u64;
        let mut seen = 0;
        for (b, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if n > 0 && seen > target {
                return Duration::from_micros(bucket_value(b));
            }
        }
        Duration::ZERO
    }

    pub fn merge(&mut self, other: &Histogram) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.total_us += other.total_us;
    }
}

/// Commands answered and their latencies, per command name.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub per_command: BTreeMap<&'static str, Histogram>,
    pub all: Histogram,
}

impl Stats {
    pub fn record(&mut self, name: &'static str, d: Duration) {
        self.per_command.entry(name).or_default().record(d);
        self.all.record(d);
    }

    pub fn merge(&mut self, other: &Stats) {
        for (k, h) in &other.per_command {
            self.per_command.entry(k).or_default().merge(h);
        }
        self.all.merge(&other.all);
    }
}

/// The result of one run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The load phase only (set-up and the final checks not counted).
    pub elapsed: Duration,
    pub clients: usize,
    pub stats: Stats,
    pub findings: Findings,
}

impl Report {
    pub fn commands(&self) -> u64 {
        self.stats.all.count()
    }

    pub fn commands_per_sec(&self) -> f64 {
        self.commands() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn p50(&self) -> Duration {
        self.stats.all.quantile(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.stats.all.quantile(0.99)
    }

    /// How much of the clients' time went to waiting for answers: the rest
    /// is the tester's own work and IDLE's wait. In a closed loop a server
    /// can only speed up this share.
    pub fn answer_share(&self) -> f64 {
        let client_time = self.elapsed.as_secs_f64() * self.clients as f64;
        self.stats.all.total().as_secs_f64() / client_time.max(1e-9)
    }

    pub fn violations(&self) -> u64 {
        self.findings.total()
    }

    /// Adds another run of the same clients: its load time, commands,
    /// latencies and findings (a benchmark's rounds, reported as one).
    pub fn merge(&mut self, other: Report) {
        self.elapsed += other.elapsed;
        self.clients = self.clients.max(other.clients);
        self.stats.merge(&other.stats);
        self.findings.merge(other.findings);
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} clients, {:.1} s: {} commands, {:.0} commands/s, latency p50 {} ms, p99 {} ms, mean {} ms; \
             waiting for answers {:.0}% of the clients' time",
            self.clients,
            self.elapsed.as_secs_f64(),
            self.commands(),
            self.commands_per_sec(),
            ms(self.p50()),
            ms(self.p99()),
            ms(self.stats.all.mean()),
            self.answer_share() * 100.0
        )?;
        writeln!(
            f,
            "{:<14} {:>9} {:>10} {:>10} {:>10} {:>7}",
            "command", "count", "p50 ms", "p99 ms", "mean ms", "time %"
        )?;
        let all = self.stats.all.total().as_secs_f64().max(1e-9);
        for (name, h) in &self.stats.per_command {
            writeln!(
                f,
                "{:<14} {:>9} {:>10} {:>10} {:>10} {:>7.1}",
                name,
                h.count(),
                ms(h.quantile(0.5)),
                ms(h.quantile(0.99)),
                ms(h.mean()),
                100.0 * h.total().as_secs_f64() / all
            )?;
        }
        writeln!(f, "violations: {}", self.violations())?;
        for (kind, n) in &self.findings.violations {
            writeln!(f, "  {kind}: {n}")?;
            for v in self.findings.examples.iter().filter(|v| v.kind == *kind) {
                writeln!(f, "    {v}")?;
            }
        }
        if !self.findings.notices.is_empty() {
            writeln!(f, "notices (allowed, but worse than the best behaviour):")?;
            for (kind, n) in &self.findings.notices {
                writeln!(f, "  {kind}: {n}")?;
                for v in self.findings.notice_examples.iter().filter(|v| v.kind == *kind).take(2) {
                    writeln!(f, "    {v}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::default();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).as_micros() as f64;
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.02, "{p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.02, "{p99}");
        for us in [0u64, 5, 127, 128, 129, 1000, 123_456_789] {
            let v = bucket_value(bucket(us));
            assert!(v <= us && (us - v) as f64 <= us as f64 * 0.02, "{us} -> {v}");
        }
    }

    #[test]
    fn merged_rounds_count_as_one_run() {
        let round = |secs: u64, commands: u64, us: u64, kind: &'static str| {
            let mut r = Report { elapsed: Duration::from_secs(secs), clients: 10, ..Report::default() };
            for _ in 0..commands {
                r.stats.record("NOOP", Duration::from_micros(us));
            }
            r.findings.violation(Violation {
                kind,
                session: "c0.1".into(),
                command: "NOOP".into(),
                line: String::new(),
                detail: String::new(),
            });
            r
        };
        let mut total = round(2, 3000, 100, "bad");
        total.merge(round(1, 6000, 400, "bad"));
        // 9,000 commands in 3 s, not the mean of 1,500/s and 6,000/s.
        assert_eq!(total.commands(), 9000);
        assert!((total.commands_per_sec() - 3000.0).abs() < 1e-6);
        let p50 = total.p50().as_micros();
        assert!((392..=400).contains(&p50), "{p50}");
        assert_eq!(total.violations(), 2);
        assert_eq!(total.findings.examples.len(), 2);
    }
}
