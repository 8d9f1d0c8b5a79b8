//! Who may send to whom. This is the only place the open-relay rule lives.
//!
//! - MX (port 25): anyone may send, with any reverse path including `<>`,
//!   but only to recipients in our local domains. An unknown user in a local
//!   domain is 550 5.1.1; any other domain is 550 5.7.1 (relay denied).
//! - Submission (587/465): only after AUTH. The reverse path must be the
//!   user's own address, an alias of it or a `+tag` of either — never the
//!   null sender, nor an address that only reaches the user through a
//!   catch-all. Local recipients are checked as on MX; remote recipients are
//!   allowed here ([`Recipient::Remote`]) and the delivery stage decides
//!   whether it can carry them.
//!
//! Invariant: [`check_recipient`] returns `Remote` only for an authenticated
//! session on a submission listener.

use crate::SmtpListener;
use crate::reply::{self, SmtpError};
use coimail_directory::{Account, Address, Directory};

/// Where a permitted recipient goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Local(Account),
    Remote,
}

fn domain_of(address: &str) -> Option<&str> {
    address.rsplit_once('@').map(|(_, d)| d)
}

/// May this session send with reverse path `from` (`""` is the null sender)?
pub fn check_sender(
    directory: &Directory,
    kind: SmtpListener,
    authenticated: Option<&Account>,
    from: &str,
) -> Result<(), SmtpError> {
    if kind == SmtpListener::Mx {
        return Ok(());
    }
    let Some(account) = authenticated else {
        return Err(reply::AUTH_REQUIRED);
    };
    if owns_address(directory, account, from)? { Ok(()) } else { Err(reply::SENDER_NOT_OWNED) }
}

/// True if `address` is the account's own address or an alias of it, with
/// or without a `+tag`. An address that is itself a user or an alias is
/// that one's alone: `alice` may not send as `alice+x@` when `alice+x@` is
/// another user, as mail to it goes to that user too (`resolve_recipient`
/// tries the exact address before the `+tag` rule).
fn owns_address(directory: &Directory, account: &Account, address: &str) -> Result<bool, SmtpError> {
    let Ok(addr) = Address::parse(address) else { return Ok(false) };
    let exact = addr.key();
    if exact == account.address {
        return Ok(true);
    }
    // The alias table is small on the servers we target; an indexed lookup
    // can replace this scan when the directory offers one.
    let aliases = directory.list_aliases().map_err(internal)?;
    if let Some((_, target)) = aliases.iter().find(|(alias, _)| *alias == exact) {
        return Ok(*target == account.address);
    }
    if directory.user(&exact).map_err(internal)?.is_some() {
        return Ok(false);
    }
    let Some((base, _)) = addr.local.split_once('+').filter(|(base, _)| !base.is_empty()) else {
        return Ok(false);
    };
    let base = Address { local: base.to_owned(), domain: addr.domain.clone() }.key();
    Ok(base == account.address || aliases.iter().any(|(alias, target)| *target == account.address && *alias == base))
}

/// Submission: every address of the message's `From` fields (`None`: one
/// that does not parse) must be the user's own, an alias of it or a `+tag`
/// of either (RFC 6409 §8 leaves it to policy; we refuse forging).
pub fn check_from_header(
    directory: &Directory,
    account: &Account,
    addresses: &[Option<String>],
) -> Result<(), SmtpError> {
    for address in addresses {
        match address {
            Some(a) if owns_address(directory, account, a)? => {}
            _ => return Err(reply::FROM_NOT_OWNED),
        }
    }
    Ok(())
}

/// May this session send to `rcpt`, and where does it go?
pub fn check_recipient(
    directory: &Directory,
    kind: SmtpListener,
    authenticated: Option<&Account>,
    rcpt: &str,
) -> Result<Recipient, SmtpError> {
    let Some(domain) = domain_of(rcpt) else {
        return Err(reply::NO_SUCH_USER);
    };
    if directory.is_local_domain(domain).map_err(internal)? {
        return match directory.resolve_recipient(rcpt).map_err(internal)? {
            Some(account) => Ok(Recipient::Local(account)),
            None => Err(reply::NO_SUCH_USER),
        };
    }
    match (kind, authenticated) {
        (SmtpListener::Submission | SmtpListener::Submissions, Some(_)) => Ok(Recipient::Remote),
        (SmtpListener::Submission | SmtpListener::Submissions, None) => Err(reply::AUTH_REQUIRED),
        (SmtpListener::Mx, _) => Err(reply::RELAY_DENIED),
    }
}

/// `<postmaster>` without a domain (RFC 5321 §4.5.1) goes to the postmaster
/// of the first local domain that has one.
pub fn postmaster(directory: &Directory) -> Result<Account, SmtpError> {
    for domain in directory.list_domains().map_err(internal)? {
        if let Some(account) = directory.resolve_recipient(&format!("postmaster@{domain}")).map_err(internal)? {
            return Ok(account);
        }
    }
    Err(reply::NO_SUCH_USER)
}

fn internal(e: coimail_directory::DirectoryError) -> SmtpError {
    tracing::error!(error = %e, "directory lookup failed");
    reply::LOCAL_ERROR
}
