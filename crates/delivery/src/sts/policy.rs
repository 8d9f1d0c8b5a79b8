//! MTA-STS records and policies (RFC 8461 §3.1, §3.2) as pure parsers, and
//! the MX matching of §4.1. Everything here comes from the network, so
//! nothing panics on bad input: a bad record or policy is an error the
//! caller treats as "no (new) policy".

use std::fmt;

/// Largest `max_age` a policy may carry (RFC 8461 §3.2: about one year).
pub const MAX_AGE_LIMIT: u32 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only listed MX hosts with a valid certificate; otherwise defer.
    Enforce,
    /// Deliver as without a policy, but report what would have failed.
    Testing,
    /// The domain withdrew its policy.
    None,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        })
    }
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// MX patterns, lower-case, without a trailing dot; `*.` allowed first.
    pub mx: Vec<String>,
    /// Seconds the policy may be cached.
    pub max_age: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("no \"v=STSv1\" record")]
    NoRecord,
    #[error("more than one \"v=STSv1\" record")]
    ManyRecords,
    #[error("record: {0}")]
    Record(String),
    #[error("policy: {0}")]
    Policy(String),
}

/// The `id` of the one `_mta-sts` TXT record among `records` (each record's
/// character-strings already joined). Records not starting with `v=STSv1`
/// are not ours and are ignored; two of ours mean none (§3.1).
pub fn record_id(records: &[String]) -> Result<String, PolicyError> {
    let ours: Vec<&String> = records.iter().filter(|r| is_sts_record(r)).collect();
    match ours.as_slice() {
        [] => Err(PolicyError::NoRecord),
        [one] => parse_record(one),
        _ => Err(PolicyError::ManyRecords),
    }
}

fn is_sts_record(r: &str) -> bool {
    let first = r.split(';').next().unwrap_or("");
    first.trim_matches([' ', '\t']) == "v=STSv1"
}

/// `v=STSv1; id=20160831085700Z;` — `id` is 1 to 32 letters and digits.
fn parse_record(r: &str) -> Result<String, PolicyError> {
    let mut id = None;
    for field in r.split(';').skip(1) {
        let field = field.trim_matches([' ', '\t']);
        if field.is_empty() {
            continue;
        }
        let Some((key, value)) = field.split_once('=') else {
            return Err(PolicyError::Record(format!("field without '=': {field:?}")));
        };
        if key == "id" && id.is_none() {
            if value.is_empty() || value.len() > 32 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(PolicyError::Record(format!("bad id {value:?}")));
            }
            id = Some(value.to_owned());
        }
        // Other fields are extensions we do not know (§3.1: ignored).
    }
    id.ok_or_else(|| PolicyError::Record("no id".into()))
}

impl Policy {
    /// Parses a policy file: `key: value` lines ending in CRLF or LF;
    /// unknown keys ignored, the first of a repeated key counts (but every
    /// `mx` does).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let bad = |why: String| Err(PolicyError::Policy(why));
        let (mut version, mut mode, mut max_age) = (None, None, None);
        let mut mx = Vec::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return bad(format!("line without ':': {line:?}"));
            };
            let value = value.trim_matches([' ', '\t']);
            match key.trim() {
                "version" => version = version.or(Some(value)),
                "mode" => mode = mode.or(Some(value)),
                "max_age" => max_age = max_age.or(Some(value)),
                "mx" => mx.push(mx_pattern(value)?),
                _ => {}
            }
        }
        if version != Some("STSv1") {
            return bad(format!("version must be STSv1, not {version:?}"));
        }
        let mode = match mode {
            Some("enforce") => Mode::Enforce,
            Some("testing") => Mode::Testing,
            Some("none") => Mode::None,
            other => return bad(format!("mode must be enforce, testing or none, not {other:?}")),
        };
        let max_age = match max_age {
            // 1*10DIGIT: no sign, no spaces (u32's parser takes "+1").
            Some(v) if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) => {
                match v.parse::<u64>() {
                    Ok(n) if n <= u64::from(MAX_AGE_LIMIT) => u32::try_from(n).unwrap_or(MAX_AGE_LIMIT),
                    _ => return bad(format!("max_age {v} is over {MAX_AGE_LIMIT}")),
                }
            }
            other => return bad(format!("max_age must be a number of seconds, not {other:?}")),
        };
        if mode != Mode::None && mx.is_empty() {
            return bad(format!("mode {mode} without any mx"));
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// The policy file as a server publishes it (§3.2: CRLF line ends,
    /// `version` first), what [`Policy::parse`] reads back. The daemon serves
    /// this text and `coimail dns` derives the `_mta-sts` record's id from
    /// it, so the two always agree.
    pub fn to_text(&self) -> String {
        let mut out = format!("version: STSv1\r\nmode: {}\r\n", self.mode);
        for mx in &self.mx {
            out.push_str(&format!("mx: {mx}\r\n"));
        }
        out.push_str(&format!("max_age: {}\r\n", self.max_age));
        out
    }

    /// Whether `host` (an MX host name) is one the policy lists (§4.1).
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|pattern| mx_matches(pattern, &host))
    }
}

/// A pattern is a host name, or `*.` and a host name.
fn mx_pattern(value: &str) -> Result<String, PolicyError> {
    let p = value.trim_end_matches('.').to_ascii_lowercase();
    let name = p.strip_prefix("*.").unwrap_or(&p);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(PolicyError::Policy(format!("bad mx pattern {value:?}")));
    }
    Ok(p)
}

/// `*.example.com` matches one label in place of `*`: `mx.example.com`,
/// but neither `example.com` nor `a.b.example.com`.
fn mx_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => host.split_once('.').is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn records_of_rfc_8461_and_broken_ones() {
        assert_eq!(record_id(&strings(&["v=STSv1; id=20160831085700Z;"])).unwrap(), "20160831085700Z");
        assert_eq!(record_id(&strings(&["v=STSv1;id=abc"])).unwrap(), "abc");
        assert_eq!(record_id(&strings(&["v=spf1 -all", "v=STSv1; id=1; ext=x"])).unwrap(), "1");
        assert_eq!(record_id(&strings(&["v=spf1 -all"])), Err(PolicyError::NoRecord));
        assert_eq!(record_id(&[]), Err(PolicyError::NoRecord));
        assert_eq!(record_id(&strings(&["v=STSv1; id=1", "v=STSv1; id=2"])), Err(PolicyError::ManyRecords));
        for bad in ["v=STSv1;", "v=STSv1; id=", "v=STSv1; id=a-b", "v=STSv1; id=123456789012345678901234567890123"] {
            assert!(matches!(record_id(&strings(&[bad])), Err(PolicyError::Record(_))), "{bad}");
        }
        assert_eq!(record_id(&strings(&["v=STSv10; id=1"])), Err(PolicyError::NoRecord), "another version");
    }

    #[test]
    fn the_policy_of_rfc_8461_section_3_2() {
        let text = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n\
                    mx: backupmx.example.com\r\nmax_age: 604800\r\n";
        let p = Policy::parse(text).unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.mx, ["mail.example.com", "*.example.net", "backupmx.example.com"]);
        assert_eq!(p.max_age, 604_800);
        // LF alone, no final newline, unknown keys, spaces around values.
        let p = Policy::parse("version: STSv1\nmode:testing\nfoo: bar\nmx:  MX.B.Test. \nmax_age: 0").unwrap();
        assert_eq!((p.mode, p.mx.as_slice(), p.max_age), (Mode::Testing, &["mx.b.test".to_owned()][..], 0));
        let p = Policy::parse("version: STSv1\nmode: none\nmax_age: 86400\n").unwrap();
        assert_eq!((p.mode, p.mx.len()), (Mode::None, 0));
        let p = Policy::parse("version: STSv1\nmode: enforce\nmode: none\nmx: a.b\nmax_age: 1\n").unwrap();
        assert_eq!(p.mode, Mode::Enforce, "the first of a repeated key");
    }

    #[test]
    fn a_written_policy_reads_back() {
        let p =
            Policy { mode: Mode::Enforce, mx: vec!["mail.example.org".into(), "*.example.net".into()], max_age: 86400 };
        let text = p.to_text();
        assert!(text.starts_with("version: STSv1\r\nmode: enforce\r\n"), "{text}");
        assert_eq!(Policy::parse(&text).unwrap(), p);
    }

    #[test]
    fn bad_policies_are_refused() {
        let ok = "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n";
        assert!(Policy::parse(ok).is_ok());
        for bad in [
            "",
            "<html>not found</html>",
            "version: STSv2\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n",
            "mode: enforce\nmx: mx.b.test\nmax_age: 86400\n",
            "version: STSv1\nmode: reject\nmx: mx.b.test\nmax_age: 86400\n",
            "version: STSv1\nmode: enforce\nmax_age: 86400\n",
            "version: STSv1\nmode: enforce\nmx: mx.b.test\n",
            "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: -1\n",
            "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: +1\n",
            "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 31557601\n",
            "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 99999999999\n",
            "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 1 day\n",
            "version: STSv1\nmode: enforce\nmx: *\nmax_age: 86400\n",
            "version: STSv1\nmode: enforce\nmx: *.\nmax_age: 86400\n",
            "version: STSv1\nmode: enforce\nmx: mx..b.test\nmax_age: 86400\n",
            "version: STSv1\nmode: enforce\nmx: mx.*.test\nmax_age: 86400\n",
            "version: STSv1\nmode: enforce\nmx: mx b.test\nmax_age: 86400\n",
            "version: STSv1\nmode enforce\nmx: mx.b.test\nmax_age: 86400\n",
        ] {
            assert!(matches!(Policy::parse(bad), Err(PolicyError::Policy(_))), "accepted {bad:?}");
        }
        assert_eq!(Policy::parse(&ok.replace("86400", "31557600")).unwrap().max_age, MAX_AGE_LIMIT);
    }

    #[test]
    fn mx_hosts_match_names_and_one_label_wildcards() {
        let p = Policy::parse("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 1\n")
            .unwrap();
        for (host, expected) in [
            ("mail.example.com", true),
            ("MAIL.Example.COM.", true),
            ("mx.mail.example.com", false),
            ("example.com", false),
            ("mx1.example.net", true),
            ("mx1.example.net.", true),
            ("example.net", false),
            ("a.b.example.net", false),
            (".example.net", false),
            ("mx1.example.network", false),
            ("xexample.net", false),
        ] {
            assert_eq!(p.matches(host), expected, "{host}");
        }
    }
}
