//! `coimail dns [DOMAIN]`: every DNS record a domain needs to receive and
//! send mail on the Internet, as zone-file lines ready to paste, and
//! `coimail dns check [DOMAIN]` (`dns_check.rs`), which resolves them.
//!
//! The records follow from the config (host name, listeners, public
//! addresses) and the DKIM keys on disk, so they are computed here, never
//! stored: what is printed is always what the server does.

use crate::admin_cmd;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use coimail_daemon::Config;
use coimail_daemon::admin::AdminRequest;
use coimail_delivery::dkim::{KeyStore, PublicKey, Role};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DnsArgs {
    #[command(subcommand)]
    command: Option<DnsCmd>,
    /// Only this domain (default: every domain served here).
    domain: Option<String>,
}

#[derive(Subcommand)]
enum DnsCmd {
    /// Resolve every record and say whether it is ok, missing or different;
    /// exits non-zero unless all are ok.
    Check {
        /// Only this domain (default: every domain served here).
        domain: Option<String>,
        /// DNS server to ask, as ip:port (default: [queue] resolvers, else /etc/resolv.conf).
        #[arg(long)]
        resolver: Vec<SocketAddr>,
    },
}

/// TTL of every record printed: an hour, short enough to fix mistakes.
const TTL: u32 = 3600;
/// The longest character-string in a TXT record (RFC 1035 §3.3).
const TXT_CHUNK: usize = 255;

/// What the records are made from.
pub struct Settings {
    pub hostname: String,
    pub addresses: Vec<IpAddr>,
    pub imap: Option<u16>,
    pub imaps: Option<u16>,
    pub submission: Option<u16>,
    pub submissions: Option<u16>,
    /// The MTA-STS policy the HTTPS listener serves (`[mta_sts]`).
    pub mta_sts_policy: String,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        let port = |addrs: &[SocketAddr]| addrs.first().map(SocketAddr::port);
        let l = &config.listen;
        Settings {
            hostname: config.server.hostname.trim_end_matches('.').to_ascii_lowercase(),
            addresses: config.dns.public_addresses.clone(),
            imap: port(&l.imap),
            imaps: port(&l.imaps),
            submission: port(&l.submission),
            submissions: port(&l.submissions),
            mta_sts_policy: config.mta_sts_policy().to_text(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Mx {
        preference: u16,
        host: String,
    },
    /// A or AAAA.
    Address(IpAddr),
    /// The server's address, not configured: left for the operator to fill in.
    AnyAddress,
    Txt(String),
    /// RFC 2782; target `.` says the service is not offered (RFC 6186 §3.4).
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Cname(String),
}

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Fully qualified, with the final dot.
    pub name: String,
    pub data: Data,
    /// What it is for; printed as a comment above its group.
    pub group: String,
}

impl Record {
    fn new(name: &str, data: Data, group: &str) -> Record {
        Record { name: format!("{}.", name.trim_end_matches('.')), data, group: group.to_owned() }
    }

    pub fn type_name(&self) -> &'static str {
        match &self.data {
            Data::Mx { .. } => "MX",
            Data::Address(IpAddr::V4(_)) => "A",
            Data::Address(IpAddr::V6(_)) | Data::AnyAddress => "AAAA",
            Data::Txt(_) => "TXT",
            Data::Srv { .. } => "SRV",
            Data::Cname(_) => "CNAME",
        }
    }

    /// The record as a zone-file line; a comment for [`Data::AnyAddress`].
    pub fn zone_line(&self) -> String {
        let rdata = match &self.data {
            Data::Mx { preference, host } => format!("{preference} {host}."),
            Data::Address(ip) => ip.to_string(),
            Data::AnyAddress => {
                return format!(
                    "; {} {TTL} IN A    <this server's public IPv4 address>\n; {} {TTL} IN AAAA <its IPv6 address, if it has one>",
                    self.name, self.name
                );
            }
            Data::Txt(text) => txt_strings(text),
            Data::Srv { priority, weight, port, target } => {
                format!("{priority} {weight} {port} {}", fqdn(target))
            }
            Data::Cname(target) => fqdn(target),
        };
        format!("{} {TTL} IN {} {rdata}", self.name, self.type_name())
    }
}

fn fqdn(name: &str) -> String {
    if name == "." { ".".into() } else { format!("{}.", name.trim_end_matches('.')) }
}

/// TXT data as quoted character-strings of at most 255 bytes each (long
/// RSA keys need several; resolvers join them back).
pub fn txt_strings(text: &str) -> String {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(TXT_CHUNK);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (chunk, tail) = rest.split_at(end);
        out.push(format!("\"{}\"", chunk.replace('\\', "\\\\").replace('"', "\\\"")));
        rest = tail;
    }
    if out.is_empty() { "\"\"".into() } else { out.join(" ") }
}

/// The `id=` of the `_mta-sts` record: changes whenever the policy does.
pub fn mta_sts_id(policy: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, policy.as_bytes());
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Every record `domain` needs, in the order they are printed.
pub fn records(domain: &str, s: &Settings, keys: &[PublicKey]) -> Vec<Record> {
    let host = s.hostname.as_str();
    let mut out = Vec::new();
    let mut add = |name: &str, data: Data, group: &str| out.push(Record::new(name, data, group));

    add(domain, Data::Mx { preference: 10, host: host.into() }, &format!("Mail for {domain} goes to {host}"));
    let group = format!("The address of {host}");
    if s.addresses.is_empty() {
        add(host, Data::AnyAddress, &group);
    }
    for ip in &s.addresses {
        add(host, Data::Address(*ip), &group);
    }

    let spf = if s.addresses.is_empty() {
        "v=spf1 mx -all".to_owned()
    } else {
        let terms: Vec<String> = s
            .addresses
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(v4) => format!("ip4:{v4}"),
                IpAddr::V6(v6) => format!("ip6:{v6}"),
            })
            .collect();
        format!("v=spf1 {} -all", terms.join(" "))
    };
    add(domain, Data::Txt(spf), &format!("SPF (RFC 7208): only this server sends mail for {domain}"));
    // Receivers also check the HELO name; one SPF record per name, so only
    // when the host name is not the domain itself.
    if host != domain {
        add(host, Data::Txt("v=spf1 a -all".into()), &format!("SPF for the name {host} says hello with"));
    }

    for key in keys {
        let group = match key.role {
            Role::Current => "DKIM (RFC 6376, RFC 8463): the keys that sign mail now".to_owned(),
            Role::Next => "DKIM: the next keys (`coimail dkim activate` once these resolve)".to_owned(),
            Role::Retiring => "DKIM: replaced keys, kept until `coimail dkim retire`".to_owned(),
        };
        add(&key.name(), Data::Txt(key.txt()), &group);
    }

    add(
        &format!("_dmarc.{domain}"),
        Data::Txt(format!("v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}")),
        "DMARC (RFC 7489): unaligned mail goes to spam; reports to postmaster",
    );
    let policy = &s.mta_sts_policy;
    let mut sts_group = format!(
        "MTA-STS (RFC 8461): senders use TLS to {host}; coimail's HTTPS listener serves this policy at\n\
         https://mta-sts.{domain}/.well-known/mta-sts.txt (a certificate for that name is needed):"
    );
    for line in policy.lines() {
        sts_group.push_str(&format!("\n  {line}"));
    }
    add(&format!("_mta-sts.{domain}"), Data::Txt(format!("v=STSv1; id={}", mta_sts_id(policy))), &sts_group);
    add(&format!("mta-sts.{domain}"), Data::Cname(host.into()), &sts_group);
    add(
        &format!("_smtp._tls.{domain}"),
        Data::Txt(format!("v=TLSRPTv1; rua=mailto:postmaster@{domain}")),
        "TLS reporting (RFC 8460): senders report TLS failures to postmaster",
    );

    let discovery = "Client discovery (RFC 6186, RFC 8314): implicit TLS first";
    for (service, port, priority) in [
        ("_imaps._tcp", s.imaps, 0),
        ("_submissions._tcp", s.submissions, 0),
        ("_imap._tcp", s.imap, 10),
        ("_submission._tcp", s.submission, 10),
    ] {
        let data = match port {
            Some(port) => Data::Srv { priority, weight: 1, port, target: host.into() },
            None => Data::Srv { priority: 0, weight: 0, port: 0, target: ".".into() },
        };
        add(&format!("{service}.{domain}"), data, discovery);
    }
    let autoconfig = "Names mail clients try for their settings (Thunderbird autoconfig, Outlook autodiscover)";
    for name in ["autoconfig", "autodiscover"] {
        add(&format!("{name}.{domain}"), Data::Cname(host.into()), autoconfig);
    }
    out
}

/// The records as zone-file text, comments above each group.
pub fn zone_text(domain: &str, records: &[Record]) -> String {
    let mut out = format!("; ---- {domain}: records to publish (coimail dns) ----\n");
    let mut group = "";
    for r in records {
        if r.group != group {
            group = &r.group;
            out.push('\n');
            for line in group.lines() {
                out.push_str(&format!("; {line}\n"));
            }
        }
        out.push_str(&r.zone_line());
        out.push('\n');
    }
    out
}

/// The domains to work on: `only` (if served here) or all of them.
pub async fn domains(config_path: &Path, only: Option<String>) -> Result<Vec<String>> {
    let all = admin_cmd::request(config_path, AdminRequest::DomainList).await?;
    match only {
        Some(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if !all.contains(&d) {
                bail!("{d} is not served here (coimail domain add {d})");
            }
            Ok(vec![d])
        }
        None if all.is_empty() => bail!("no domains yet: coimail domain add example.org"),
        None => Ok(all),
    }
}

/// Each domain with its records.
pub async fn all_records(config_path: &Path, only: Option<String>) -> Result<Vec<(String, Vec<Record>)>> {
    let config = Config::load(config_path)?;
    let settings = Settings::from_config(&config);
    let keys = KeyStore::new(config.dkim_dir());
    let mut out = Vec::new();
    for domain in domains(config_path, only).await? {
        let public = keys.public_keys(&domain).with_context(|| format!("DKIM keys of {domain}"))?;
        out.push((domain.clone(), records(&domain, &settings, &public)));
    }
    Ok(out)
}

pub async fn run(config_path: &Path, args: DnsArgs) -> Result<()> {
    match args.command {
        Some(DnsCmd::Check { domain, resolver }) => crate::dns_check::run(config_path, domain, resolver).await,
        None => {
            for (i, (domain, records)) in all_records(config_path, args.domain).await?.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print!("{}", zone_text(domain, records));
                if !records.iter().any(|r| r.name.contains("._domainkey.")) {
                    println!(
                        "\n; No DKIM keys: mail from {domain} leaves unsigned. `coimail dkim rotate {domain}` makes them."
                    );
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coimail_delivery::dkim::Algorithm;

    fn settings() -> Settings {
        Settings {
            hostname: "mail.example.org".into(),
            addresses: vec![],
            imap: Some(143),
            imaps: Some(993),
            submission: Some(587),
            submissions: None,
            mta_sts_policy: coimail_daemon::Config::default().mta_sts_policy().to_text(),
        }
    }

    fn key(algorithm: Algorithm, len: usize) -> PublicKey {
        PublicKey {
            domain: "example.org".into(),
            selector: algorithm.selector("20261207"),
            algorithm,
            role: Role::Current,
            public: vec![7; len],
        }
    }

    #[test]
    fn long_txt_records_are_split_into_255_byte_strings() {
        let text = format!("v=DKIM1; k=rsa; p={}", "A".repeat(400));
        let quoted = txt_strings(&text);
        let parts: Vec<&str> = quoted.split("\" \"").collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].trim_start_matches('"').len(), 255);
        assert_eq!(quoted.replace("\" \"", "").trim_matches('"'), text);
        assert_eq!(txt_strings("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn every_record_a_domain_needs() {
        let keys = [key(Algorithm::Ed25519, 32), key(Algorithm::Rsa, 294)];
        let recs = records("example.org", &settings(), &keys);
        let lines: Vec<String> = recs.iter().map(Record::zone_line).collect();
        let text = lines.join("\n");
        for expected in [
            "example.org. 3600 IN MX 10 mail.example.org.",
            "; mail.example.org. 3600 IN A    <this server's public IPv4 address>",
            "example.org. 3600 IN TXT \"v=spf1 mx -all\"",
            "mail.example.org. 3600 IN TXT \"v=spf1 a -all\"",
            "ed-20261207._domainkey.example.org. 3600 IN TXT \"v=DKIM1; k=ed25519; p=BwcH",
            "rsa-20261207._domainkey.example.org. 3600 IN TXT \"v=DKIM1; k=rsa; p=BwcH",
            "_dmarc.example.org. 3600 IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org\"",
            "_mta-sts.example.org. 3600 IN TXT \"v=STSv1; id=",
            "mta-sts.example.org. 3600 IN CNAME mail.example.org.",
            "_smtp._tls.example.org. 3600 IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@example.org\"",
            "_imaps._tcp.example.org. 3600 IN SRV 0 1 993 mail.example.org.",
            "_submissions._tcp.example.org. 3600 IN SRV 0 0 0 .",
            "_imap._tcp.example.org. 3600 IN SRV 10 1 143 mail.example.org.",
            "_submission._tcp.example.org. 3600 IN SRV 10 1 587 mail.example.org.",
            "autoconfig.example.org. 3600 IN CNAME mail.example.org.",
            "autodiscover.example.org. 3600 IN CNAME mail.example.org.",
        ] {
            assert!(text.contains(expected), "lacks {expected:?}:\n{text}");
        }
        let rsa = lines.iter().find(|l| l.starts_with("rsa-")).unwrap();
        assert!(rsa.contains("\" \""), "the RSA key is split: {rsa}");

        let mut with_ips = settings();
        with_ips.addresses = vec!["203.0.113.5".parse().unwrap(), "2001:db8::5".parse().unwrap()];
        with_ips.hostname = "example.org".into();
        let text: Vec<String> = records("example.org", &with_ips, &[]).iter().map(Record::zone_line).collect();
        assert!(text.contains(&"example.org. 3600 IN A 203.0.113.5".to_owned()), "{text:?}");
        assert!(text.contains(&"example.org. 3600 IN AAAA 2001:db8::5".to_owned()), "{text:?}");
        assert!(text.contains(&"example.org. 3600 IN TXT \"v=spf1 ip4:203.0.113.5 ip6:2001:db8::5 -all\"".to_owned()));
        assert_eq!(text.iter().filter(|l| l.contains("v=spf1")).count(), 1, "one SPF record per name");
    }

    #[test]
    fn the_mta_sts_id_follows_the_policy() {
        let mut c = Config::default();
        c.server.hostname = "mail.example.org".into();
        let a = mta_sts_id(&Settings::from_config(&c).mta_sts_policy);
        assert_eq!(a.len(), 16);
        assert_eq!(a, mta_sts_id(&Settings::from_config(&c).mta_sts_policy));
        c.server.hostname = "mx.example.org".into();
        assert_ne!(a, mta_sts_id(&Settings::from_config(&c).mta_sts_policy));
        c.server.hostname = "mail.example.org".into();
        c.mta_sts.mode = coimail_delivery::sts::Mode::Enforce;
        let enforce = &Settings::from_config(&c).mta_sts_policy;
        assert!(enforce.contains("mode: enforce\r\n"), "{enforce}");
        assert_ne!(a, mta_sts_id(enforce));
    }
}
