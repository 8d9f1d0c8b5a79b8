//! Inbound authentication on the MX listener (never on submission): SPF
//! (RFC 7208) of the HELO and MAIL FROM identities, DKIM (RFC 6376), ARC
//! (RFC 8617), DMARC (RFC 7489) and iprev (RFC 8601 §3), all by mail-auth
//! over one hickory resolver and the caches of `cache.rs`. They run once the
//! whole message is in (end of DATA, BDAT LAST): DMARC needs the From
//! field, and SPF at MAIL time would only save a round trip for mail we
//! refuse, at the cost of every accepted message's latency. The checks
//! that need no message run concurrently with DKIM; iprev and the HELO
//! check are done once per session (they depend on the peer and HELO only).
//!
//! # Verdicts ([`decide`]), in this order
//! 1. DMARC `fail` with policy `reject` → `550 5.7.1`.
//! 2. Mail claiming one of our own domains (MAIL FROM, or an address in
//!    From) without an SPF pass for an aligned MAIL FROM domain or a DKIM
//!    pass for an aligned `d=` → `550 5.7.1` (`451 4.7.1` if a temporary
//!    error might have hidden the pass). Only our own users may send as
//!    us, and they do that on submission.
//! 3. A temporary DNS failure in a check that decides (SPF of MAIL FROM, or
//!    of HELO for `<>`; DKIM; DMARC) → `451 4.7.1`, unless DMARC passed:
//!    never a silent pass. iprev and ARC decide nothing here; their
//!    temperror is only reported.
//! 4. DMARC `fail` with policy `quarantine` → delivered to each recipient's
//!    `\Junk` mailbox (created on demand).
//! 5. SPF `fail` and no passing DKIM signature → `550 5.7.23` (RFC 7208
//!    §8.4 allows rejecting; with a DKIM pass the mail may be forwarded).
//! 6. Otherwise delivered; `none`/`neutral`/`softfail`/`permerror` only
//!    show in the header, as RFC 7208 and RFC 7489 intend for domains
//!    without (or with broken) records.
//!
//! Every message gets one `Authentication-Results` field (`header.rs`) and
//! loses any that claim our authserv-id; each verdict is logged in the
//! session's span.

mod cache;
pub(crate) mod header;

use crate::reply::{Enhanced, SmtpError};
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, DkimOutput, DkimResult, DmarcOutput, DmarcResult, Error, IprevOutput, IprevResult,
    MessageAuthenticator, SpfOutput, SpfResult,
};
use std::net::IpAddr;

pub use mail_auth::hickory_resolver::TokioResolver;

const DMARC_REJECT: SmtpError = SmtpError::new(550, Enhanced(5, 7, 1), "rejected by the sender domain's DMARC policy");
const OWN_DOMAIN: SmtpError =
    SmtpError::new(550, Enhanced(5, 7, 1), "sender claims a domain of this server without authentication");
const TEMPORARY: SmtpError =
    SmtpError::new(451, Enhanced(4, 7, 1), "temporary DNS failure checking the sender, try again later");
/// RFC 7372 §3.2: X.7.23 "SPF validation failed".
const SPF_FAIL: SmtpError = SmtpError::new(550, Enhanced(5, 7, 23), "SPF check failed");

/// The checks' shared state: the resolver (with its own cache) and ours.
pub struct Checker {
    auth: MessageAuthenticator,
    caches: cache::Caches,
    /// Our authserv-id (the server's host name).
    authserv_id: String,
}

/// What the checks know of the session, and remember for it.
pub(crate) struct Peer<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    /// Reverse path; empty for `<>`.
    pub mail_from: &'a str,
}

/// Per-session results that do not depend on the message.
#[derive(Default)]
pub(crate) struct SessionChecks {
    iprev: Option<IprevOutput>,
    helo: Option<(String, SpfOutput)>,
}

/// What happens to the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Deliver,
    /// Into each recipient's `\Junk` mailbox.
    Quarantine,
    Refuse(SmtpError),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Deliver => f.write_str("deliver"),
            Verdict::Quarantine => f.write_str("quarantine"),
            Verdict::Refuse(e) => write!(f, "refuse {e}"),
        }
    }
}

/// Every check's result for one message.
pub(crate) struct Results<'x> {
    pub iprev: IprevOutput,
    pub spf_helo: SpfOutput,
    /// For `<>` the HELO check again (RFC 7208 §2.4).
    pub spf_mail_from: SpfOutput,
    pub dkim: Vec<DkimOutput<'x>>,
    pub arc: ArcOutput<'x>,
    pub dmarc: DmarcOutput,
    /// The From field's address, for the header (`""` without one).
    pub header_from: &'x str,
}

/// The verdict and the `Authentication-Results` field to add.
pub(crate) struct Checked {
    pub verdict: Verdict,
    pub header: String,
}

impl Checker {
    /// Checks resolving through `resolver` (built like the queue's, so
    /// tests can point both at their DNS server); `authserv_id` is our
    /// host name.
    pub fn new(resolver: TokioResolver, authserv_id: &str) -> Checker {
        Checker {
            auth: MessageAuthenticator(resolver),
            caches: cache::Caches::new(),
            authserv_id: authserv_id.to_owned(),
        }
    }

    /// Runs every check on `message` (as the client sent it, without our
    /// trace headers). `own` says whether a domain is one of ours.
    pub(crate) async fn check(
        &self,
        peer: &Peer<'_>,
        memo: &mut SessionChecks,
        message: &[u8],
        own: &(dyn Fn(&str) -> Result<bool, SmtpError> + Sync),
    ) -> Checked {
        let parsed = AuthenticatedMessage::parse(message);
        // No header at all: nothing signed, no From; the envelope checks still count.
        let empty = AuthenticatedMessage::default();
        let msg = parsed.as_ref().unwrap_or(&empty);
        let (iprev, spf_helo) = self.session_checks(peer, memo).await;
        let (spf_mail_from, dkim, arc) = tokio::join!(
            async {
                if peer.mail_from.is_empty() {
                    spf_helo.clone()
                } else {
                    let p = SpfParameters::verify_mail_from(peer.ip, peer.helo, &self.authserv_id, peer.mail_from);
                    self.auth.verify_spf(self.caches.with(p)).await
                }
            },
            self.auth.verify_dkim(self.caches.with(msg)),
            self.auth.verify_arc(self.caches.with(msg)),
        );
        let dkim: Vec<DkimOutput<'_>> = dkim.into_iter().map(|o| body_hash_mismatch_fails(o, msg)).collect();
        let dmarc = {
            let p = DmarcParameters::new(msg, &dkim, spf_mail_from.domain(), &spf_mail_from);
            self.auth.verify_dmarc(self.caches.with(p)).await
        };
        let header_from = msg.from.first().map_or("", String::as_str);
        let results = Results { iprev, spf_helo, spf_mail_from, dkim, arc, dmarc, header_from };
        let verdict = match own_claims(peer.mail_from, &msg.from, own) {
            Ok(claims) => decide(&Facts::of(&results), &claims),
            Err(e) => Verdict::Refuse(e),
        };
        log(&results, &verdict);
        let ids = header::Identities { ip: peer.ip, helo: peer.helo, mail_from: peer.mail_from };
        Checked { header: header::write(&self.authserv_id, &results, &ids), verdict }
    }

    /// iprev and SPF of the HELO name, from the session's memo when known.
    async fn session_checks(&self, peer: &Peer<'_>, memo: &mut SessionChecks) -> (IprevOutput, SpfOutput) {
        let iprev = memo.iprev.clone();
        let helo = memo.helo.as_ref().filter(|(name, _)| name == peer.helo).map(|(_, spf)| spf.clone());
        let (iprev, helo) = tokio::join!(
            async {
                match iprev {
                    Some(known) => known,
                    None => self.auth.verify_iprev(self.caches.with(peer.ip)).await,
                }
            },
            async {
                match helo {
                    Some(known) => known,
                    None => {
                        let p = SpfParameters::verify_ehlo(peer.ip, peer.helo, &self.authserv_id);
                        self.auth.verify_spf(self.caches.with(p)).await
                    }
                }
            },
        );
        // A temporary failure is not remembered: the next message asks again.
        if !matches!(iprev.result, IprevResult::TempError(_)) {
            memo.iprev = Some(iprev.clone());
        }
        if helo.result() != SpfResult::TempError {
            memo.helo = Some((peer.helo.to_owned(), helo.clone()));
        }
        (iprev, helo)
    }

    /// Our authserv-id.
    pub(crate) fn authserv_id(&self) -> &str {
        &self.authserv_id
    }
}

/// Runs the checks on `message` (our trace headers in its first `head`
/// octets, the client's message after them) and, unless it is refused,
/// edits it: forged `Authentication-Results` out, ours in right after
/// `Return-Path`. When `message` holds only the start of a large message
/// (its whole header section; the rest is staged on disk), `whole` is the
/// client's entire message if [`needs_body`] said the checks need it.
pub(crate) async fn apply(
    checker: &Checker,
    peer: &Peer<'_>,
    memo: &mut SessionChecks,
    message: &mut Vec<u8>,
    head: usize,
    whole: Option<&[u8]>,
    own: &(dyn Fn(&str) -> Result<bool, SmtpError> + Sync),
) -> Verdict {
    let checked = checker.check(peer, memo, whole.unwrap_or(message.get(head..).unwrap_or_default()), own).await;
    if matches!(checked.verdict, Verdict::Refuse(_)) {
        return checked.verdict;
    }
    let removed = header::remove_forged(message, head, checker.authserv_id());
    if removed > 0 {
        tracing::info!(removed, "removed Authentication-Results fields claiming to be ours");
    }
    let after_return_path =
        message.get(..head).and_then(|h| h.windows(2).position(|w| w == b"\r\n")).map_or(0, |end| end + 2);
    message.splice(after_return_path..after_return_path, checked.header.into_bytes());
    checked.verdict
}

/// Whether checking a message with this header section needs its body:
/// only DKIM and ARC hash it, and only when the header section has their
/// fields. Without them, the header section gives the same results
/// (SPF, iprev and DMARC read the envelope and `From`).
pub(crate) fn needs_body(header: &[u8]) -> bool {
    header.split(|&b| b == b'\n').any(|line| {
        let name = line.split(|&b| b == b':').next().unwrap_or_default().trim_ascii_end();
        name.eq_ignore_ascii_case(b"DKIM-Signature") || name.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"ARC-"))
    })
}

/// mail-auth reports a body that no longer matches its signature's body
/// hash as `neutral`; RFC 6376 §6.3 makes it a failed verification
/// (PERMFAIL), which is what RFC 8601's `fail` means. Reported as such.
fn body_hash_mismatch_fails<'x>(out: DkimOutput<'x>, msg: &'x AuthenticatedMessage<'x>) -> DkimOutput<'x> {
    if !matches!(out.result(), DkimResult::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch))) {
        return out;
    }
    // `signature()` lends for as long as `out`; the message lends for 'x.
    let signed = out.signature().and_then(|s| msg.dkim_headers.iter().find(|h| std::ptr::eq(&h.header, s)));
    match signed {
        Some(h) => DkimOutput::fail(Error::Dkim(DkimError::FailedBodyHashMatch)).with_signature(&h.header),
        None => out,
    }
}

/// The domains of ours the message claims to come from: MAIL FROM's, and
/// those of From's addresses (a subdomain of ours counts as ours).
fn own_claims(
    mail_from: &str,
    from: &[String],
    own: &(dyn Fn(&str) -> Result<bool, SmtpError> + Sync),
) -> Result<Vec<String>, SmtpError> {
    let mut claims: Vec<String> = Vec::new();
    for address in std::iter::once(mail_from).chain(from.iter().map(String::as_str)) {
        let Some((_, domain)) = address.rsplit_once('@') else { continue };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if claims.contains(&domain) {
            continue;
        }
        let mut suffix = domain.as_str();
        loop {
            if own(suffix)? {
                claims.push(domain.clone());
                break;
            }
            match suffix.split_once('.') {
                Some((_, rest)) if rest.contains('.') => suffix = rest,
                _ => break,
            }
        }
    }
    Ok(claims)
}

/// Relaxed alignment (RFC 7489 §3.1) within one domain tree: equal, or
/// one a subdomain of the other. Used for our own domains, whose
/// organizational domain we know without a public-suffix list.
fn aligned(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('.').to_ascii_lowercase(), b.trim_end_matches('.').to_ascii_lowercase());
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))
}

/// What the verdict depends on, taken from the results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    pub dmarc: DmarcResult,
    pub policy: Policy,
    /// SPF of the MAIL FROM identity (of HELO for `<>`), and its domain.
    pub spf: SpfResult,
    pub spf_domain: String,
    /// `d=` of every signature that verified.
    pub dkim_pass: Vec<String>,
    pub dkim_temporary: bool,
}

impl Facts {
    pub(crate) fn of(r: &Results<'_>) -> Facts {
        Facts {
            dmarc: r.dmarc.result(),
            policy: r.dmarc.policy(),
            spf: r.spf_mail_from.result(),
            spf_domain: r.spf_mail_from.domain().to_owned(),
            dkim_pass: r
                .dkim
                .iter()
                .filter(|o| *o.result() == DkimResult::Pass)
                .filter_map(|o| o.signature().map(|s| s.d.clone()))
                .collect(),
            dkim_temporary: r.dkim.iter().any(|o| matches!(o.result(), DkimResult::TempError(_))),
        }
    }
}

/// The verdict (see the module doc for the order); `claims` are the
/// domains of ours the message says it is from.
pub(crate) fn decide(f: &Facts, claims: &[String]) -> Verdict {
    let dmarc_fail = matches!(f.dmarc, DmarcResult::Fail(_));
    if dmarc_fail && f.policy == Policy::Reject {
        return Verdict::Refuse(DMARC_REJECT);
    }
    let temporary = f.spf == SpfResult::TempError || f.dkim_temporary || matches!(f.dmarc, DmarcResult::TempError(_));
    let proven = |d: &String| {
        (f.spf == SpfResult::Pass && aligned(&f.spf_domain, d)) || f.dkim_pass.iter().any(|s| aligned(s, d))
    };
    if !claims.iter().all(proven) {
        return Verdict::Refuse(if temporary { TEMPORARY } else { OWN_DOMAIN });
    }
    if temporary && f.dmarc != DmarcResult::Pass {
        return Verdict::Refuse(TEMPORARY);
    }
    if dmarc_fail && f.policy == Policy::Quarantine {
        return Verdict::Quarantine;
    }
    if f.spf == SpfResult::Fail && f.dkim_pass.is_empty() {
        return Verdict::Refuse(SPF_FAIL);
    }
    Verdict::Deliver
}

/// Each check's result in the session's log.
fn log(r: &Results<'_>, verdict: &Verdict) {
    let dkim: Vec<String> = r
        .dkim
        .iter()
        .map(|o| match o.signature() {
            Some(s) => format!("{} (d={} s={})", o.result(), s.d, s.s),
            None => o.result().to_string(),
        })
        .collect();
    tracing::info!(
        iprev = %r.iprev.result,
        spf_helo = %r.spf_helo.result(),
        spf_mail_from = %r.spf_mail_from.result(),
        spf_domain = r.spf_mail_from.domain(),
        dkim = ?dkim,
        arc = %r.arc.result(),
        dmarc = %r.dmarc.result(),
        dmarc_domain = r.dmarc.domain(),
        dmarc_policy = %r.dmarc.policy(),
        verdict = %verdict,
        "inbound checks"
    );
}

#[cfg(test)]
mod tests;
