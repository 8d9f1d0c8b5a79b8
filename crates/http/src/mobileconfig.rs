//! An Apple configuration profile (`.mobileconfig`, a property list with
//! one `com.apple.mail.managed` payload) that sets up Mail on iOS and macOS
//! for one address. Apple has no discovery protocol: the user downloads
//! this from `/apple/mail.mobileconfig?email=...` and installs it.
//!
//! The profile's UUIDs and identifier are derived from the address and the
//! host name, so downloading it again replaces the installed profile
//! instead of adding a second account.

use crate::xml::Doc;
use crate::{Endpoint, MailServices, Security};

/// A UUID-shaped string (version 5 layout) from a digest of `parts`.
fn stable_uuid(parts: &[&str]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, parts.join("\n").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

fn bool_entry(d: &mut Doc, key: &str, value: bool) {
    d.leaf("key", key).raw(if value { "<true/>" } else { "<false/>" });
}

/// One side (incoming or outgoing) of the mail payload; `prefix` is
/// `Incoming` or `Outgoing`.
fn server(d: &mut Doc, prefix: &str, hostname: &str, address: &str, e: &Endpoint) {
    d.leaf("key", &format!("{prefix}MailServerAuthentication")).leaf("string", "EmailAuthPassword");
    d.leaf("key", &format!("{prefix}MailServerHostName")).leaf("string", hostname);
    d.leaf("key", &format!("{prefix}MailServerPortNumber")).leaf("integer", &e.port.to_string());
    // Apple's `UseSSL` means TLS on the port given: implicit TLS there, or
    // STARTTLS on a submission/IMAP port. Both are on.
    bool_entry(
        d,
        &format!("{prefix}MailServerUseSSL"),
        matches!(e.security, Security::ImplicitTls | Security::Starttls),
    );
    d.leaf("key", &format!("{prefix}MailServerUsername")).leaf("string", address);
}

/// The profile for `address`, or `None` when this server has no IMAP or no
/// submission listener (a profile needs both).
pub(crate) fn document(address: &str, hostname: &str, services: &MailServices) -> Option<String> {
    let incoming = services.imap.first()?;
    let outgoing = services.submission.first()?;
    let reverse: Vec<&str> = hostname.rsplit('.').collect();
    let identifier = format!("{}.coimail.{}", reverse.join("."), stable_uuid(&[address]));
    let local = address.rsplit_once('@').map_or(address, |(l, _)| l);

    let mut d = Doc::new(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">"
    ));
    d.open("plist", "version=\"1.0\"").open("dict", "");
    d.leaf("key", "PayloadContent").open("array", "").open("dict", "");
    d.leaf("key", "EmailAccountDescription").leaf("string", address);
    d.leaf("key", "EmailAccountName").leaf("string", local);
    d.leaf("key", "EmailAccountType").leaf("string", "EmailTypeIMAP");
    d.leaf("key", "EmailAddress").leaf("string", address);
    server(&mut d, "Incoming", hostname, address, incoming);
    server(&mut d, "Outgoing", hostname, address, outgoing);
    bool_entry(&mut d, "OutgoingPasswordSameAsIncomingPassword", true);
    d.leaf("key", "PayloadDescription").leaf("string", &format!("Mail account {address}"));
    d.leaf("key", "PayloadDisplayName").leaf("string", address);
    d.leaf("key", "PayloadIdentifier").leaf("string", &format!("{identifier}.account"));
    d.leaf("key", "PayloadType").leaf("string", "com.apple.mail.managed");
    d.leaf("key", "PayloadUUID").leaf("string", &stable_uuid(&[address, hostname, "account"]));
    d.leaf("key", "PayloadVersion").leaf("integer", "1");
    d.close("dict").close("array");
    d.leaf("key", "PayloadDescription").leaf("string", &format!("Sets up Mail for {address} on {hostname}"));
    d.leaf("key", "PayloadDisplayName").leaf("string", &format!("Mail: {address}"));
    d.leaf("key", "PayloadIdentifier").leaf("string", &identifier);
    bool_entry(&mut d, "PayloadRemovalDisallowed", false);
    d.leaf("key", "PayloadType").leaf("string", "Configuration");
    d.leaf("key", "PayloadUUID").leaf("string", &stable_uuid(&[address, hostname, "profile"]));
    d.leaf("key", "PayloadVersion").leaf("integer", "1");
    d.close("dict").close("plist");
    Some(d.finish())
}

#[cfg(test)]
mod tests {
    use crate::MailServices;

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let a = super::stable_uuid(&["alice@example.org"]);
        assert_eq!(a, super::stable_uuid(&["alice@example.org"]));
        assert_ne!(a, super::stable_uuid(&["bob@example.org"]));
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'5');
    }

    #[test]
    fn no_profile_without_both_sides() {
        let services = MailServices::new(Some(993), None, None, None);
        assert!(super::document("a@example.org", "mail.example.org", &services).is_none());
        let services = MailServices::new(None, Some(143), None, Some(587));
        let doc = super::document("a@example.org", "mail.example.org", &services).unwrap();
        assert!(doc.contains("<integer>587</integer>"), "{doc}");
    }
}
