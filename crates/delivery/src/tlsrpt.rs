//! TLS reporting records (RFC 8460): per destination domain and UTC day,
//! how many outbound sessions negotiated TLS as their policy asks and which
//! failed, and why (`starttls-not-supported`, `certificate-host-mismatch`,
//! `sts-policy-fetch-error`, ...).
//!
//! Each record is the `policies` part of an RFC 8460 §4.4 report, kept as
//! JSON in `<data>/tls-reports/<YYYY-MM-DD>/<domain>.json` and rewritten
//! whole after every session (small files, one write without fsync per SMTP
//! session, far cheaper than the session; under a lock, so the writes of
//! one file land in order). Sending the daily aggregate
//! reports to the `rua` of a domain's `_smtp._tls` record is not built yet;
//! the records are what such reports would be made from, and `coimail queue
//! tls-report` shows them. Days older than [`KEEP_DAYS`] are deleted at
//! startup.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The records' directory under the data directory.
pub const DIR: &str = "tls-reports";

/// Days of records kept.
pub const KEEP_DAYS: i64 = 31;

/// One domain's sessions on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DayRecord {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    pub policy_domain: String,
    pub policies: Vec<PolicyRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PolicyRecord {
    pub policy: PolicyDesc,
    pub summary: Summary,
    #[serde(default)]
    pub failure_details: Vec<FailureDetail>,
}

/// RFC 8460 §4.4 `policy`: `sts` with the policy's lines, or
/// `no-policy-found`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PolicyDesc {
    pub policy_type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_string: Vec<String>,
    pub policy_domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mx_host: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Summary {
    pub total_successful_session_count: u64,
    pub total_failure_session_count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FailureDetail {
    pub result_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_mx_hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_ip: Option<String>,
    pub failed_session_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason_code: Option<String>,
}

/// The outcome of one session (or of a policy fetch) to record.
#[derive(Debug, Clone)]
pub(crate) enum Session {
    Success,
    Failure {
        /// An RFC 8460 §4.3 result type.
        result_type: &'static str,
        mx: Option<String>,
        ip: Option<IpAddr>,
        reason: String,
    },
}

/// Where the records live, and today's in memory.
pub struct TlsReports {
    dir: PathBuf,
    days: Mutex<HashMap<(String, String), DayRecord>>,
}

/// `YYYY-MM-DD` of a Unix time, UTC.
pub fn date_of(unix: i64) -> String {
    let d = mail_parser::DateTime::from_timestamp(unix);
    format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
}

/// A domain that is safe as a file name (it comes from a recipient
/// address): letters, digits, `-`, `_` and inner dots.
pub(crate) fn file_safe(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && !domain.starts_with('.')
        && !domain.contains("..")
        && domain.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

impl TlsReports {
    /// Records under `dir` (`<data>/tls-reports`).
    pub fn new(dir: PathBuf) -> TlsReports {
        TlsReports { dir, days: Mutex::new(HashMap::new()) }
    }

    /// Adds one session to `domain`'s record of the day of `now`.
    pub(crate) fn record(&self, domain: &str, policy: &PolicyDesc, session: &Session, now: i64) {
        if !file_safe(domain) {
            return;
        }
        let date = date_of(now);
        let mut days = self.days.lock().unwrap_or_else(|e| e.into_inner());
        // Only today's records are written to; yesterday's are final.
        days.retain(|(d, _), _| *d == date);
        let key = (date.clone(), domain.to_owned());
        let path = self.dir.join(&date).join(format!("{domain}.json"));
        let day = days.entry(key).or_insert_with(|| {
            read(&path).unwrap_or_else(|| DayRecord { date, policy_domain: domain.to_owned(), policies: Vec::new() })
        });
        add(day, policy, session);
        let write = serde_json::to_vec_pretty(&*day).map_err(std::io::Error::other).and_then(|json| {
            std::fs::create_dir_all(path.parent().unwrap_or(&self.dir))?;
            crate::files::replace(&path, &json)
        });
        if let Err(e) = write {
            tracing::warn!(path = %path.display(), error = %e, "writing the TLS report record failed");
        }
    }

    /// Deletes the days older than [`KEEP_DAYS`].
    pub fn prune(&self, now: i64) {
        let oldest = date_of(now.saturating_sub(KEEP_DAYS * 86_400));
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() != 10 || name >= oldest {
                continue;
            }
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(day = name, error = %e, "deleting old TLS report records failed");
            }
        }
    }
}

fn add(day: &mut DayRecord, policy: &PolicyDesc, session: &Session) {
    let i = match day.policies.iter().position(|p| p.policy == *policy) {
        Some(i) => i,
        None => {
            day.policies.push(PolicyRecord { policy: policy.clone(), ..PolicyRecord::default() });
            day.policies.len() - 1
        }
    };
    let Some(rec) = day.policies.get_mut(i) else { return };
    match session {
        Session::Success => rec.summary.total_successful_session_count += 1,
        Session::Failure { result_type, mx, ip, reason } => {
            rec.summary.total_failure_session_count += 1;
            let detail = FailureDetail {
                result_type: (*result_type).to_owned(),
                receiving_mx_hostname: mx.clone(),
                receiving_ip: ip.map(|ip| ip.to_string()),
                failed_session_count: 0,
                failure_reason_code: Some(reason.clone()),
            };
            let same = |d: &&mut FailureDetail| FailureDetail { failed_session_count: 0, ..(*d).clone() } == detail;
            match rec.failure_details.iter_mut().find(same) {
                Some(d) => d.failed_session_count += 1,
                None => rec.failure_details.push(FailureDetail { failed_session_count: 1, ..detail }),
            }
        }
    }
}

fn read(path: &Path) -> Option<DayRecord> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every record under `dir`, oldest day first, only `domain`'s when given.
pub fn load(dir: &Path, domain: Option<&str>) -> std::io::Result<Vec<DayRecord>> {
    let mut days: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    days.sort();
    let mut out = Vec::new();
    for day in days {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&day)?.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let is_json = file.extension().is_some_and(|e| e == "json");
            let wanted = domain.is_none_or(|d| file.file_stem().is_some_and(|s| *s == *d.to_ascii_lowercase()));
            if let Some(record) = (is_json && wanted).then(|| read(&file)).flatten() {
                out.push(record);
            }
        }
    }
    Ok(out)
}

/// Records as `coimail queue tls-report` prints them.
pub fn describe(records: &[DayRecord]) -> Vec<String> {
    let mut lines = Vec::new();
    for r in records {
        for p in &r.policies {
            let mode = p.policy.policy_string.iter().find_map(|l| l.strip_prefix("mode: ")).unwrap_or("");
            let kind = if mode.is_empty() { p.policy.policy_type.clone() } else { format!("sts {mode}") };
            lines.push(format!(
                "{}  {}  {kind}  {} successful  {} failed",
                r.date,
                r.policy_domain,
                p.summary.total_successful_session_count,
                p.summary.total_failure_session_count
            ));
            for f in &p.failure_details {
                let mx = f.receiving_mx_hostname.as_deref().unwrap_or("-");
                let ip = f.receiving_ip.as_deref().map(|ip| format!("[{ip}]")).unwrap_or_default();
                let reason = f.failure_reason_code.as_deref().unwrap_or("");
                lines.push(format!("    {}  {mx}{ip}  x{}  {reason}", f.result_type, f.failed_session_count));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_601_600 + 3600; // 2026-12-07 01:00 UTC

    #[test]
    fn sessions_add_up_per_policy_and_failure_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sts = PolicyDesc {
            policy_type: "sts".into(),
            policy_string: vec!["version: STSv1".into(), "mode: enforce".into()],
            policy_domain: "b.test".into(),
            mx_host: vec!["mx.b.test".into()],
        };
        let fail = Session::Failure {
            result_type: "certificate-host-mismatch",
            mx: Some("mx.b.test".into()),
            ip: Some("127.0.0.3".parse().unwrap()),
            reason: "not valid for mx.b.test".into(),
        };
        let reports = TlsReports::new(dir.path().to_owned());
        reports.record("b.test", &sts, &Session::Success, NOW);
        reports.record("b.test", &sts, &fail, NOW);
        drop(reports);
        let reports = TlsReports::new(dir.path().to_owned());
        reports.record("b.test", &sts, &fail, NOW + 60);
        reports.record("../evil", &sts, &fail, NOW);
        let records = load(dir.path(), Some("b.test")).unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!((r.date.as_str(), r.policy_domain.as_str()), ("2026-12-07", "b.test"));
        assert_eq!(r.policies.len(), 1);
        assert_eq!(r.policies[0].summary.total_successful_session_count, 1);
        assert_eq!(r.policies[0].summary.total_failure_session_count, 2);
        assert_eq!(r.policies[0].failure_details.len(), 1);
        assert_eq!(r.policies[0].failure_details[0].failed_session_count, 2);
        assert_eq!(
            describe(&records),
            [
                "2026-12-07  b.test  sts enforce  1 successful  2 failed",
                "    certificate-host-mismatch  mx.b.test[127.0.0.3]  x2  not valid for mx.b.test",
            ]
        );
        let json = std::fs::read_to_string(dir.path().join("2026-12-07/b.test.json")).unwrap();
        assert!(json.contains("\"total-failure-session-count\": 2"), "RFC 8460 names: {json}");
        assert!(load(dir.path(), Some("c.test")).unwrap().is_empty());
        assert_eq!(load(dir.path(), None).unwrap().len(), 1, "nothing outside the directory");

        reports.record("b.test", &sts, &Session::Success, NOW + KEEP_DAYS * 86_400);
        reports.prune(NOW + (KEEP_DAYS + 1) * 86_400);
        let days: Vec<String> = load(dir.path(), None).unwrap().into_iter().map(|r| r.date).collect();
        assert_eq!(days, ["2027-01-07"], "old days pruned");
    }
}
