//! Mozilla autoconfig (Thunderbird's `clientConfig` format, version 1.1;
//! draft-ietf-mailmaint-autoconfig): what Thunderbird, K-9/Thunderbird for
//! Android, Delta Chat and others fetch from
//! `https://autoconfig.<domain>/mail/config-v1.1.xml` or
//! `https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml`.
//!
//! Servers are listed in the order clients should try them: implicit TLS
//! first (RFC 8314 §3), then STARTTLS. The user name is the placeholder
//! `%EMAILADDRESS%`, which the client replaces with what the user typed, so
//! one document serves every user of the domain.

use crate::xml::{Doc, text};
use crate::{MailServices, Security};

fn socket_type(security: Security) -> &'static str {
    match security {
        Security::ImplicitTls => "SSL",
        Security::Starttls => "STARTTLS",
    }
}

/// The `clientConfig` document for `domain`, whose mail is served by `hostname`.
pub(crate) fn document(domain: &str, hostname: &str, services: &MailServices) -> String {
    let mut d = Doc::new("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    d.open("clientConfig", "version=\"1.1\"");
    d.open("emailProvider", &format!("id=\"{}\"", text(domain)));
    d.leaf("domain", domain).leaf("displayName", domain).leaf("displayShortName", domain);
    for (element, kind, endpoints) in
        [("incomingServer", "imap", &services.imap), ("outgoingServer", "smtp", &services.submission)]
    {
        for e in endpoints {
            d.open(element, &format!("type=\"{kind}\""));
            d.leaf("hostname", hostname)
                .leaf("port", &e.port.to_string())
                .leaf("socketType", socket_type(e.security))
                .leaf("username", "%EMAILADDRESS%")
                .leaf("authentication", "password-cleartext");
            d.close(element);
        }
    }
    d.close("emailProvider");
    d.close("clientConfig");
    d.finish()
}

#[cfg(test)]
mod tests {
    use crate::{Endpoint, MailServices, Security};

    #[test]
    fn lists_implicit_tls_first_and_escapes() {
        let services = MailServices::new(Some(993), Some(143), Some(465), None);
        let doc = super::document("ex<ample.org", "mail.example.org", &services);
        assert!(doc.contains("<emailProvider id=\"ex&lt;ample.org\">"), "{doc}");
        let ssl = doc.find("<port>993</port>").unwrap();
        let starttls = doc.find("<port>143</port>").unwrap();
        assert!(ssl < starttls, "{doc}");
        assert!(doc.contains("<socketType>STARTTLS</socketType>"));
        assert_eq!(doc.matches("<outgoingServer").count(), 1);
        assert_eq!(services.submission, vec![Endpoint { port: 465, security: Security::ImplicitTls }]);
    }
}
