//! `coimail dns check [DOMAIN]`: resolves every record `coimail dns`
//! prints and reports each as ok, missing or different (or a DNS error).
//! A name may hold other records too (a second TXT record, more MX hosts):
//! a record is ok when one of the answers is the one we want.

use crate::dns::{Data, Record, all_records};
use anyhow::{Result, bail};
use coimail_daemon::Config;
use coimail_delivery::{Dns, RData, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok(String),
    Missing,
    /// What was found instead.
    Different(String),
    /// The lookup failed (timeout, SERVFAIL): unknown.
    Error(String),
}

pub async fn run(config_path: &Path, only: Option<String>, resolvers: Vec<SocketAddr>) -> Result<()> {
    let config = Config::load(config_path)?;
    let servers = if resolvers.is_empty() { config.queue.resolvers.clone() } else { resolvers };
    let dns = Dns::new(&servers, Duration::from_secs(5))?;
    let mut bad = 0;
    for (domain, records) in all_records(config_path, only).await? {
        println!("{domain}:");
        for r in &records {
            let verdict = check(&dns, r).await;
            let shown = match &r.data {
                Data::AnyAddress => format!("{} A/AAAA", r.name),
                _ => r.zone_line(),
            };
            match &verdict {
                Verdict::Ok(found) if found.is_empty() => println!("  ok         {shown}"),
                Verdict::Ok(found) => println!("  ok         {shown}  ({found})"),
                Verdict::Missing => println!("  missing    {shown}"),
                Verdict::Different(found) => println!("  different  {shown}\n             found: {found}"),
                Verdict::Error(e) => println!("  error      {shown}\n             {e}"),
            }
            if !matches!(verdict, Verdict::Ok(_)) {
                bad += 1;
            }
        }
    }
    if bad > 0 {
        bail!("{bad} record(s) not as `coimail dns` prints them");
    }
    Ok(())
}

fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Looks `r` up and compares.
pub async fn check(dns: &Dns, r: &Record) -> Verdict {
    let lookup = |rtype| dns.records(&r.name, rtype);
    let found = match &r.data {
        Data::Mx { .. } => lookup(RecordType::MX).await,
        Data::Address(IpAddr::V4(_)) => lookup(RecordType::A).await,
        Data::Address(IpAddr::V6(_)) => lookup(RecordType::AAAA).await,
        Data::AnyAddress => match (lookup(RecordType::A).await, lookup(RecordType::AAAA).await) {
            (Ok(mut a), Ok(aaaa)) => {
                a.extend(aaaa);
                Ok(a)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        Data::Txt(_) => lookup(RecordType::TXT).await,
        Data::Srv { .. } => lookup(RecordType::SRV).await,
        Data::Cname(_) => lookup(RecordType::CNAME).await,
    };
    match found {
        Ok(found) => compare(&r.data, &found),
        Err(e) => Verdict::Error(e),
    }
}

/// The verdict for what we want next to what DNS answered.
pub fn compare(want: &Data, found: &[RData]) -> Verdict {
    let shown: Vec<String> = found.iter().map(show).collect();
    let matches = |f: &RData| match (want, f) {
        (Data::Mx { host, .. }, RData::MX(mx)) => same_host(host, &mx.exchange.to_ascii()),
        (Data::Address(ip), RData::A(a)) => *ip == IpAddr::V4(a.0),
        (Data::Address(ip), RData::AAAA(a)) => *ip == IpAddr::V6(a.0),
        (Data::AnyAddress, RData::A(_) | RData::AAAA(_)) => true,
        (Data::Txt(text), RData::TXT(_)) => same_txt(text, &show(f)),
        (Data::Srv { port, target, .. }, RData::SRV(srv)) => {
            srv.port == *port && same_host(target, &srv.target.to_ascii())
        }
        (Data::Cname(target), RData::CNAME(c)) => same_host(target, &c.0.to_ascii()),
        _ => false,
    };
    if found.iter().any(matches) {
        return Verdict::Ok(if matches!(want, Data::AnyAddress) { shown.join(", ") } else { String::new() });
    }
    // Other TXT records (site verifications and the like) share names with
    // ours: only one of the same kind is a different version of ours.
    let relevant: Vec<&String> = match want {
        Data::Txt(text) => shown.iter().filter(|s| txt_kind(s) == txt_kind(text)).collect(),
        _ => shown.iter().collect(),
    };
    if relevant.is_empty() {
        Verdict::Missing
    } else {
        Verdict::Different(relevant.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" | "))
    }
}

fn show(r: &RData) -> String {
    match r {
        // The character-strings of one record, joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
        RData::TXT(txt) => txt.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect(),
        other => other.to_string(),
    }
}

/// `v=spf1`, `v=DKIM1`, ...: the version tag that starts the record.
fn txt_kind(text: &str) -> String {
    text.split([';', ' ']).next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Equal up to spacing: SPF by its terms, the tag=value records (DKIM,
/// DMARC, MTA-STS, TLSRPT) by their tags, in any order.
fn same_txt(want: &str, found: &str) -> bool {
    if txt_kind(want) == "v=spf1" {
        let terms = |s: &str| s.split_whitespace().map(str::to_ascii_lowercase).collect::<Vec<_>>();
        return terms(want) == terms(found);
    }
    let tags = |s: &str| {
        let mut v: Vec<(String, String)> = s
            .split(';')
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.split_whitespace().collect::<String>()))
            .collect();
        v.sort();
        v
    };
    tags(want) == tags(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coimail_delivery::RData;
    use hickory_resolver::proto::rr::Name;
    use hickory_resolver::proto::rr::rdata::{MX, SRV, TXT};

    fn txt(parts: &[&str]) -> RData {
        RData::TXT(TXT::new(parts.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn verdicts() {
        let want = Data::Txt("v=DKIM1; k=rsa; p=ABCDEF".into());
        assert_eq!(compare(&want, &[]), Verdict::Missing);
        assert_eq!(compare(&want, &[txt(&["v=DKIM1; k=rsa; p=ABC", "DEF"])]), Verdict::Ok(String::new()));
        assert_eq!(compare(&want, &[txt(&["k=rsa;v=DKIM1;  p=ABC DEF;"])]), Verdict::Ok(String::new()));
        assert_eq!(
            compare(&want, &[txt(&["v=DKIM1; k=rsa; p=OLD"])]),
            Verdict::Different("v=DKIM1; k=rsa; p=OLD".into())
        );

        let spf = Data::Txt("v=spf1 mx -all".into());
        assert_eq!(compare(&spf, &[txt(&["google-site-verification=x"])]), Verdict::Missing, "not an SPF record");
        assert_eq!(
            compare(&spf, &[txt(&["google-site-verification=x"]), txt(&["v=spf1  MX -all"])]),
            Verdict::Ok("".into())
        );
        assert!(matches!(compare(&spf, &[txt(&["v=spf1 a ~all"])]), Verdict::Different(_)));

        let mx = Data::Mx { preference: 10, host: "mail.example.org".into() };
        let found = RData::MX(MX::new(20, Name::from_ascii("Mail.Example.org.").unwrap()));
        assert_eq!(compare(&mx, &[found]), Verdict::Ok("".into()), "any preference, any case");
        let other = RData::MX(MX::new(10, Name::from_ascii("mx.elsewhere.test.").unwrap()));
        assert!(matches!(compare(&mx, &[other]), Verdict::Different(s) if s.contains("mx.elsewhere.test")));

        let srv = Data::Srv { priority: 0, weight: 1, port: 993, target: "mail.example.org".into() };
        let at = |port| RData::SRV(SRV::new(0, 1, port, Name::from_ascii("mail.example.org.").unwrap()));
        assert_eq!(compare(&srv, &[at(993)]), Verdict::Ok("".into()));
        assert!(matches!(compare(&srv, &[at(1993)]), Verdict::Different(_)));
    }
}
