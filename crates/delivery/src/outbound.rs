//! One domain's recipients of one queue entry, over SMTP to the domain's
//! mail servers, with mail-send's low-level `SmtpClient` (not
//! `Message::send`, which gives up at the first refused recipient).
//!
//! Per domain: the MX hosts best first, equal preferences in random order
//! (`dns.rs`), each host's addresses in turn, until one server takes the
//! transaction. A server that cannot be
//! reached, greets with an error or breaks the connection makes us try the
//! next; the first one that completes a transaction decides every
//! recipient, each by its own RCPT reply and then the reply to the data.
//!
//! Session: greeting, EHLO, STARTTLS whenever offered (opportunistic, see
//! `tls.rs`; if the handshake fails the same address is tried once more in
//! plaintext), EHLO again, MAIL with SIZE/BODY/SMTPUTF8 and the DSN
//! parameters RET/ENVID when the server offers them, RCPT per recipient with
//! NOTIFY/ORCPT, then BDAT (CHUNKING offered) or DATA, QUIT.
//!
//! MTA-STS (RFC 8461 §5, `sts/`): with a policy in `enforce` mode only the
//! MX hosts it lists are tried, each must offer STARTTLS and present a
//! certificate valid for its name (checked before MAIL), and there is no
//! plaintext retry: otherwise the recipients are deferred (`451 4.7.5
//! MTA-STS enforce: ...`, the text `coimail queue list` shows) and, at
//! expiry, bounced. In `testing` mode the same checks run, their failures
//! are only reported, and delivery goes on as without a policy. Every
//! session's TLS result goes into the TLS report records (`tlsrpt.rs`).
//!
//! No downgrades: an internationalized message (a non-ASCII address, or
//! non-ASCII in the header section) to a server that does not offer
//! SMTPUTF8 fails with `5.6.7` (RFC 6531 §3.2); an 8-bit message to a server
//! that does not offer 8BITMIME fails with `5.6.3` rather than being
//! converted to quoted-printable (RFC 6152 §3 allows either; such servers
//! are rare, and a conversion would break signatures over the body).
//!
//! Destinations (`destinations.rs`): addresses that are not globally
//! reachable (loopback, RFC 1918, link-local, ...) are never connected to
//! unless `allow_private_destinations` is set. A host with only such
//! addresses counts as a host without addresses: when no host is left the
//! recipients fail for good with `550 5.4.4` (RFC 3463: unable to route),
//! and the bounce and the log name the refused addresses.
//!
//! Outcomes: 2xx delivered, 5xx failed, anything else deferred. Our own
//! failures are written as SMTP-like replies (`451 4.4.1 ...`) so the
//! history and the bounce read the same either way. Each result says
//! whether the server offered DSN (and so got the recipient's NOTIFY).

use crate::attempt::Transport;
use crate::dns::{Dns, DnsFailure, Route};
use crate::sts::{Lookup, Mode, Sts};
use crate::tls::Pki;
use crate::tlsrpt::{PolicyDesc, Session, TlsReports};
use crate::{DeliveryError, QueueConfig};
use coimail_store::spool::{AttemptOutcome, DsnRet, SpoolEntry, SpoolRecipient, SpoolResult};
use mail_send::SmtpClient;
use smtp_proto::{
    EXT_8BIT_MIME, EXT_CHUNKING, EXT_DSN, EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS, EhloResponse, Response,
};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tracing::{info, warn};

/// The SMTP client side of the queue.
pub struct Outbound {
    dns: Arc<Dns>,
    tls: TlsConnector,
    /// MTA-STS and its certificate checks; `None`: `[queue] mta_sts = false`.
    sts: Option<(Sts, Pki)>,
    reports: TlsReports,
    hostname: String,
    port: u16,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// [`QueueConfig::allow_private_destinations`].
    allow_private: bool,
}

/// Why a server could not take the transaction; the next one is tried.
#[derive(Debug, thiserror::Error)]
enum HostError {
    #[error("{0}")]
    Smtp(#[from] mail_send::Error),
    #[error("greeting refused: {0}")]
    Greeting(String),
    #[error("STARTTLS failed: {0}")]
    Tls(mail_send::Error),
    /// The domain's policy forbids this server or session; never retried
    /// without TLS.
    #[error("{0}")]
    Policy(String),
}

/// What one domain's attempt is about.
struct Job<'a> {
    entry: &'a SpoolEntry,
    rcpts: &'a [SpoolRecipient],
    message: &'a [u8],
    domain: &'a str,
    tls: TlsPolicy,
}

/// The TLS a domain's policy asks of this delivery, and how its sessions
/// are reported.
#[derive(Default)]
struct TlsPolicy {
    /// `Some` for a policy in `enforce` or `testing` mode.
    mode: Option<Mode>,
    lookup: Lookup,
    report_as: PolicyDesc,
}

impl TlsPolicy {
    fn new(domain: &str, lookup: Lookup) -> TlsPolicy {
        let active = lookup.policy.as_ref().filter(|c| c.policy.mode != Mode::None);
        let report_as = match active {
            Some(c) => PolicyDesc {
                policy_type: "sts".into(),
                policy_string: c.lines(),
                policy_domain: domain.to_owned(),
                mx_host: c.policy.mx.clone(),
            },
            // RFC 8460 §4.4: a policy that could not be fetched is still "sts".
            None if lookup.problem.is_some() => {
                PolicyDesc { policy_type: "sts".into(), policy_domain: domain.to_owned(), ..PolicyDesc::default() }
            }
            None => PolicyDesc {
                policy_type: "no-policy-found".into(),
                policy_domain: domain.to_owned(),
                ..PolicyDesc::default()
            },
        };
        TlsPolicy { mode: active.map(|c| c.policy.mode), lookup, report_as }
    }

    fn enforce(&self) -> bool {
        self.mode == Some(Mode::Enforce)
    }

    /// Whether certificates are checked (enforce and testing).
    fn checks_certificates(&self) -> bool {
        self.mode.is_some()
    }

    fn allows(&self, host: &str) -> bool {
        self.lookup.policy.as_ref().is_none_or(|c| c.policy.matches(host))
    }
}

impl Outbound {
    pub fn new(config: &QueueConfig) -> Result<Outbound, DeliveryError> {
        let dns = Arc::new(Dns::new(&config.resolvers, config.command_timeout.min(Duration::from_secs(10)))?);
        let sts = match config.mta_sts {
            true => {
                let pki = Pki::new(config.tls_extra_roots.as_deref())?;
                // RFC 8461 §3.3 leaves the timeout to us; a minute at most.
                let timeout = config.command_timeout.min(Duration::from_secs(60));
                let fetcher = crate::sts::fetch::Fetcher::new(dns.clone(), &pki, config.mta_sts_port, timeout)?;
                Some((Sts::new(dns.clone(), fetcher, config.data_dir.join("mta-sts")), pki))
            }
            false => None,
        };
        let reports = TlsReports::new(config.data_dir.join(crate::tlsrpt::DIR));
        reports.prune(crate::now());
        Ok(Outbound {
            dns,
            tls: crate::tls::opportunistic_connector()?,
            sts,
            reports,
            hostname: config.hostname.clone(),
            port: config.port,
            connect_timeout: config.connect_timeout,
            command_timeout: config.command_timeout,
            allow_private: config.allow_private_destinations,
        })
    }

    async fn hosts(&self, domain: &str, rcpts: &[SpoolRecipient]) -> Result<Vec<String>, Vec<SpoolResult>> {
        match self.dns.route(domain).await {
            Ok(Route::Hosts(hosts)) => Ok(hosts),
            Ok(Route::NullMx) => {
                Err(all(rcpts, AttemptOutcome::Failed, format!("556 5.1.10 {domain} accepts no mail (null MX)")))
            }
            Err(DnsFailure::NoSuchDomain) => {
                Err(all(rcpts, AttemptOutcome::Failed, format!("550 5.1.2 domain {domain} does not exist")))
            }
            Err(DnsFailure::Temporary(e)) => {
                Err(all(rcpts, AttemptOutcome::Deferred, format!("451 4.4.3 MX lookup for {domain} failed: {e}")))
            }
        }
    }

    /// The domain's MTA-STS policy; a failed fetch is reported here.
    async fn tls_policy(&self, domain: &str) -> TlsPolicy {
        let now = crate::now();
        let lookup = match &self.sts {
            Some((sts, _)) => sts.lookup(domain, now).await,
            None => Lookup::default(),
        };
        let policy = TlsPolicy::new(domain, lookup);
        if let Some(p) = &policy.lookup.problem {
            let session = Session::Failure { result_type: p.result_type, mx: None, ip: None, reason: p.detail.clone() };
            self.reports.record(domain, &policy.report_as, &session, now);
        }
        policy
    }

    fn report(&self, job: &Job<'_>, session: &Session) {
        self.reports.record(job.domain, &job.tls.report_as, session, crate::now());
    }

    /// The hosts the policy lets us try; the others are reported (and in
    /// testing mode still tried).
    fn allowed_hosts(&self, hosts: Vec<String>, job: &Job<'_>) -> Vec<String> {
        if !job.tls.checks_certificates() {
            return hosts;
        }
        let (allowed, refused): (Vec<String>, Vec<String>) = hosts.into_iter().partition(|h| job.tls.allows(h));
        for host in &refused {
            let reason = format!("MX {host} is not listed in the MTA-STS policy of {}", job.domain);
            self.report(
                job,
                &Session::Failure { result_type: "validation-failure", mx: Some(host.clone()), ip: None, reason },
            );
        }
        if job.tls.enforce() { allowed } else { allowed.into_iter().chain(refused).collect() }
    }

    async fn deliver_domain(&self, domain: &str, job: &Job<'_>) -> Vec<SpoolResult> {
        let hosts = match self.hosts(domain, job.rcpts).await {
            Ok(h) => h,
            Err(results) => return results,
        };
        let listed = hosts.join(", ");
        let hosts = self.allowed_hosts(hosts, job);
        if hosts.is_empty() {
            let reply = format!("451 4.7.5 MTA-STS enforce: no MX host of {domain} is listed in its policy ({listed})");
            return all(job.rcpts, AttemptOutcome::Deferred, reply);
        }
        let mut last = format!("451 4.4.4 no mail server for {domain} could be reached");
        // Only when every host name definitively has no address is it final.
        let mut permanent = true;
        for host in &hosts {
            let ips = match self.dns.addresses(host).await {
                Ok(ips) if !ips.is_empty() => ips,
                Ok(_) | Err(DnsFailure::NoSuchDomain) => {
                    last = format!("550 5.4.4 mail server {host} has no address");
                    continue;
                }
                Err(DnsFailure::Temporary(e)) => {
                    permanent = false;
                    last = format!("451 4.4.3 address lookup for {host} failed: {e}");
                    continue;
                }
            };
            let (ips, refused): (Vec<IpAddr>, Vec<IpAddr>) =
                ips.into_iter().partition(|ip| self.allow_private || crate::destinations::is_public(*ip));
            if !refused.is_empty() {
                let list = refused.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ");
                warn!(queue_id = job.entry.id, %host, addresses = %list, "private or special-purpose address refused");
                if ips.is_empty() {
                    // Like a host without addresses: final unless another host is only temporarily unusable.
                    last = format!(
                        "550 5.4.4 mail server {host} resolves only to private or special-purpose addresses ({list})"
                    );
                    continue;
                }
            }
            permanent = false;
            for ip in ips {
                let addr = SocketAddr::new(ip, self.port);
                match self.try_address(host, addr, job).await {
                    Ok(results) => return results,
                    Err(HostError::Policy(why)) => {
                        warn!(queue_id = job.entry.id, %host, %addr, error = %why, "refused by the MTA-STS policy");
                        last = format!("451 4.7.5 {why}");
                    }
                    Err(e) => {
                        warn!(queue_id = job.entry.id, %host, %addr, error = %e, "mail server unusable");
                        last = format!("451 4.4.1 {host}[{ip}]: {e}");
                    }
                }
            }
        }
        let outcome = if permanent { AttemptOutcome::Failed } else { AttemptOutcome::Deferred };
        all(job.rcpts, outcome, last)
    }

    async fn try_address(&self, host: &str, addr: SocketAddr, job: &Job<'_>) -> Result<Vec<SpoolResult>, HostError> {
        match self.session(host, addr, true, job).await {
            Err(HostError::Tls(e)) => {
                warn!(%host, %addr, error = %e, "STARTTLS failed; trying once more without TLS");
                self.session(host, addr, false, job).await
            }
            other => other,
        }
    }

    async fn session(
        &self,
        host: &str,
        addr: SocketAddr,
        try_tls: bool,
        job: &Job<'_>,
    ) -> Result<Vec<SpoolResult>, HostError> {
        let mut client = SmtpClient::connect(addr, self.connect_timeout).await?;
        client.timeout = self.command_timeout;
        let greeting = tokio::time::timeout(self.command_timeout, client.read())
            .await
            .map_err(|_| mail_send::Error::Timeout)??;
        if !(200..300).contains(&greeting.code) {
            return Err(HostError::Greeting(reply_text(&greeting)));
        }
        let caps = client.ehlo(&self.hostname).await?;
        if try_tls && caps.has_capability(EXT_START_TLS) {
            let mut client = match client.start_tls(&self.tls, host).await {
                Ok(c) => c,
                Err(e) => return Err(self.handshake_failed(job, host, addr, e)),
            };
            if let Err(why) = self.check_certificate(job, host, addr, client.stream.get_ref().1) {
                let _ = client.quit().await;
                return Err(why);
            }
            let caps = client.ehlo(&self.hostname).await?;
            let results = transaction(&mut client, &caps, host, job).await?;
            let _ = client.quit().await;
            return Ok(results);
        }
        if try_tls {
            let reason = format!("{host} does not offer STARTTLS");
            let ip = Some(addr.ip());
            self.report(
                job,
                &Session::Failure { result_type: "starttls-not-supported", mx: Some(host.into()), ip, reason },
            );
            if job.tls.enforce() {
                let _ = client.quit().await;
                return Err(HostError::Policy(format!("MTA-STS enforce: {host} does not offer STARTTLS")));
            }
        }
        let results = transaction(&mut client, &caps, host, job).await?;
        let _ = client.quit().await;
        Ok(results)
    }
}

impl Outbound {
    /// A failed handshake: reported; under `enforce` final for this host.
    fn handshake_failed(&self, job: &Job<'_>, host: &str, addr: SocketAddr, e: mail_send::Error) -> HostError {
        let reason = format!("TLS handshake with {host} failed: {e}");
        let ip = Some(addr.ip());
        self.report(job, &Session::Failure { result_type: "validation-failure", mx: Some(host.into()), ip, reason });
        if job.tls.enforce() {
            return HostError::Policy(format!("MTA-STS enforce: TLS handshake with {host} failed: {e}"));
        }
        HostError::Tls(e)
    }

    /// Checks the certificate when the policy asks (and reports the
    /// session); `Err` only under `enforce`.
    fn check_certificate(
        &self,
        job: &Job<'_>,
        host: &str,
        addr: SocketAddr,
        conn: &rustls::ClientConnection,
    ) -> Result<(), HostError> {
        let check = match &self.sts {
            Some((_, pki)) if job.tls.checks_certificates() => pki.check(conn, host),
            // No policy asks: encryption alone is the success (RFC 8460 no-policy-found).
            _ => Ok(()),
        };
        match check {
            Ok(()) => {
                self.report(job, &Session::Success);
                Ok(())
            }
            Err(f) => {
                let (mx, ip) = (Some(host.to_owned()), Some(addr.ip()));
                let reason = format!("{host} has no valid certificate for {host}: {}", f.detail);
                self.report(job, &Session::Failure { result_type: f.result_type, mx, ip, reason: reason.clone() });
                match job.tls.enforce() {
                    true => Err(HostError::Policy(format!("MTA-STS enforce: {reason}"))),
                    false => {
                        info!(queue_id = job.entry.id, %host, reason, "MTA-STS testing: would have deferred");
                        Ok(())
                    }
                }
            }
        }
    }
}

impl Transport for Outbound {
    async fn deliver(
        &self,
        domain: &str,
        entry: &SpoolEntry,
        rcpts: &[SpoolRecipient],
        message: &[u8],
    ) -> Vec<SpoolResult> {
        let tls = self.tls_policy(domain).await;
        let results = self.deliver_domain(domain, &Job { entry, rcpts, message, domain, tls }).await;
        for r in &results {
            info!(queue_id = entry.id, rcpt = %r.address, host = ?r.host, outcome = ?r.outcome, reply = %r.reply,
                "delivery attempt");
        }
        results
    }
}

/// The same result for every recipient, with no server to name.
fn all(rcpts: &[SpoolRecipient], outcome: AttemptOutcome, reply: String) -> Vec<SpoolResult> {
    rcpts
        .iter()
        .map(|r| SpoolResult {
            address: r.address.clone(),
            host: None,
            outcome,
            reply: reply.clone(),
            dsn_passed: false,
        })
        .collect()
}

fn outcome(code: u16) -> AttemptOutcome {
    match code {
        200..=299 => AttemptOutcome::Delivered,
        500..=599 => AttemptOutcome::Failed,
        _ => AttemptOutcome::Deferred,
    }
}

/// A reply as one line: `550 5.1.1 text`.
fn reply_text(r: &Response<String>) -> String {
    let text = r.message.replace(['\r', '\n'], " ");
    match r.esc {
        [0, _, _] => format!("{} {text}", r.code),
        [a, b, c] => format!("{} {a}.{b}.{c} {text}", r.code),
    }
}

/// RFC 3461 §4 xtext.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

fn mail_command(caps: &EhloResponse<String>, job: &Job<'_>, smtputf8: bool) -> String {
    let mut cmd = format!("MAIL FROM:<{}>", job.entry.sender);
    if caps.has_capability(EXT_SIZE) {
        cmd.push_str(&format!(" SIZE={}", job.message.len()));
    }
    if !job.message.is_ascii() && caps.has_capability(EXT_8BIT_MIME) {
        cmd.push_str(" BODY=8BITMIME");
    }
    if smtputf8 {
        cmd.push_str(" SMTPUTF8");
    }
    if caps.has_capability(EXT_DSN) {
        match job.entry.ret {
            Some(DsnRet::Full) => cmd.push_str(" RET=FULL"),
            Some(DsnRet::Headers) => cmd.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(id) = &job.entry.env_id {
            cmd.push_str(&format!(" ENVID={}", xtext(id)));
        }
    }
    cmd.push_str("\r\n");
    cmd
}

fn rcpt_command(rcpt: &SpoolRecipient, dsn: bool) -> String {
    let mut cmd = format!("RCPT TO:<{}>", rcpt.address);
    if dsn {
        if let Some(n) = rcpt.notify {
            let kinds: Vec<&str> = [(n.success, "SUCCESS"), (n.failure, "FAILURE"), (n.delay, "DELAY")]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
            let list = if kinds.is_empty() { "NEVER".to_owned() } else { kinds.join(",") };
            cmd.push_str(&format!(" NOTIFY={list}"));
        }
        if let Some(orcpt) = &rcpt.orcpt {
            cmd.push_str(&format!(" ORCPT=rfc822;{}", xtext(orcpt)));
        }
    }
    cmd.push_str("\r\n");
    cmd
}

/// RFC 6531/6532: UTF-8 in the envelope or in the header fields.
fn international(job: &Job<'_>) -> bool {
    !job.entry.sender.is_ascii()
        || job.rcpts.iter().any(|r| !r.address.is_ascii())
        || !crate::dsn::header_section(job.message).is_ascii()
}

/// MAIL, RCPT for each recipient, the data; one result per recipient.
async fn transaction<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    caps: &EhloResponse<String>,
    host: &str,
    job: &Job<'_>,
) -> Result<Vec<SpoolResult>, HostError> {
    let dsn = caps.has_capability(EXT_DSN);
    let result = |address: &str, reply: &Response<String>| SpoolResult {
        address: address.to_owned(),
        host: Some(host.to_owned()),
        outcome: outcome(reply.code),
        reply: reply_text(reply),
        dsn_passed: dsn,
    };
    let refuse = |reply: String| {
        let mut results = all(job.rcpts, AttemptOutcome::Failed, reply);
        results.iter_mut().for_each(|r| r.host = Some(host.to_owned()));
        results
    };
    let smtputf8 = international(job);
    if smtputf8 && !caps.has_capability(EXT_SMTP_UTF8) {
        return Ok(refuse(format!(
            "553 5.6.7 {host} does not support SMTPUTF8, needed for this internationalized message"
        )));
    }
    if !job.message.is_ascii() && !caps.has_capability(EXT_8BIT_MIME) {
        return Ok(refuse(format!("554 5.6.3 {host} does not support 8BITMIME, needed for this 8-bit message")));
    }
    let mail = client.cmd(mail_command(caps, job, smtputf8)).await?;
    if outcome(mail.code) != AttemptOutcome::Delivered {
        return Ok(job.rcpts.iter().map(|r| result(&r.address, &mail)).collect());
    }
    let mut results = Vec::with_capacity(job.rcpts.len());
    let mut accepted = Vec::new();
    for rcpt in job.rcpts {
        let reply = client.cmd(rcpt_command(rcpt, dsn)).await?;
        if outcome(reply.code) == AttemptOutcome::Delivered {
            accepted.push(rcpt);
        } else {
            results.push(result(&rcpt.address, &reply));
        }
    }
    if !accepted.is_empty() {
        let reply = send_data(client, caps, job.message).await?;
        results.extend(accepted.iter().map(|r| result(&r.address, &reply)));
    }
    Ok(results)
}

/// BDAT when the server offers CHUNKING (no dot-stuffing), DATA otherwise.
async fn send_data<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    caps: &EhloResponse<String>,
    message: &[u8],
) -> Result<Response<String>, HostError> {
    let timeout = client.timeout;
    if caps.has_capability(EXT_CHUNKING) {
        let send = async {
            client.stream.write_all(format!("BDAT {} LAST\r\n", message.len()).as_bytes()).await?;
            client.stream.write_all(message).await?;
            client.stream.flush().await?;
            client.read().await
        };
        return Ok(tokio::time::timeout(timeout, send).await.map_err(|_| mail_send::Error::Timeout)??);
    }
    let go = client.cmd(b"DATA\r\n").await?;
    if go.code != 354 {
        return Ok(go);
    }
    // mail-send always writes CRLF . CRLF after the data: drop our final
    // CRLF so the message arrives without an extra empty line.
    let body = message.strip_suffix(b"\r\n").unwrap_or(message);
    let send = async {
        client.write_message(body).await?;
        client.read().await
    };
    Ok(tokio::time::timeout(timeout, send).await.map_err(|_| mail_send::Error::Timeout)??)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coimail_store::spool::DsnNotify;

    #[test]
    fn dsn_parameters_are_passed_on_as_xtext() {
        assert_eq!(xtext("a+b=c d\u{e9}"), "a+2Bb+3Dc+20d+C3+A9");
        let rcpt = SpoolRecipient::new(
            "bob@b.test",
            Some("Bob+x@B.test".into()),
            Some(DsnNotify { success: true, failure: true, delay: false }),
        );
        assert_eq!(
            rcpt_command(&rcpt, true),
            "RCPT TO:<bob@b.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+2Bx@B.test\r\n"
        );
        assert_eq!(rcpt_command(&rcpt, false), "RCPT TO:<bob@b.test>\r\n");
        let never = SpoolRecipient::new("c@b.test", None, Some(DsnNotify::default()));
        assert_eq!(rcpt_command(&never, true), "RCPT TO:<c@b.test> NOTIFY=NEVER\r\n");
    }

    #[test]
    fn replies_and_outcomes() {
        let r = Response { code: 550, esc: [5, 1, 1], message: "no such\nuser".to_owned() };
        assert_eq!(reply_text(&r), "550 5.1.1 no such user");
        let r = Response { code: 421, esc: [0, 0, 0], message: "busy".to_owned() };
        assert_eq!(reply_text(&r), "421 busy");
        assert_eq!(outcome(250), AttemptOutcome::Delivered);
        assert_eq!(outcome(452), AttemptOutcome::Deferred);
        assert_eq!(outcome(554), AttemptOutcome::Failed);
        assert_eq!(outcome(354), AttemptOutcome::Deferred);
    }
}
