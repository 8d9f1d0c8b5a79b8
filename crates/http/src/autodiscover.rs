//! Microsoft Autodiscover (the POX protocol Outlook and many phones speak):
//! `POST /autodiscover/autodiscover.xml` with a request naming the user's
//! address, answered in the Outlook response schema ("2006a") with the
//! IMAP and SMTP servers.
//!
//! We answer in the Outlook schema whichever schema the request asks for:
//! the "mobilesync" schema can only name an ActiveSync server, which we do
//! not have; a client asking for it finds no ActiveSync settings and falls
//! back as it would after an error.

use crate::xml::Doc;
use crate::{Endpoint, MailServices, Security};
use quick_xml::events::Event;

/// The request's `Request/EMailAddress`, or why there is none. The body is
/// the client's; at most [`crate::MAX_BODY`] bytes of it reach here.
pub(crate) fn requested_address(body: &[u8]) -> Result<String, &'static str> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut in_address = false;
    let mut address = String::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => in_address = e.local_name().as_ref() == b"EMailAddress",
            Ok(Event::Text(t)) if in_address => {
                let s = t.decode().map_err(|_| "EMailAddress is not UTF-8")?;
                address.push_str(&s);
            }
            Ok(Event::CData(c)) if in_address => {
                let s = c.decode().map_err(|_| "EMailAddress is not UTF-8")?;
                address.push_str(&s);
            }
            Ok(Event::GeneralRef(r)) if in_address => {
                // An entity or character reference inside the address.
                let name = r.decode().map_err(|_| "bad reference in EMailAddress")?;
                let c = match &*name {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    _ => r.resolve_char_ref().ok().flatten(),
                };
                address.push(c.ok_or("unknown entity in EMailAddress")?);
            }
            Ok(Event::End(e)) if in_address && e.local_name().as_ref() == b"EMailAddress" => {
                let trimmed = address.trim();
                return if trimmed.is_empty() { Err("empty EMailAddress") } else { Ok(trimmed.to_owned()) };
            }
            Ok(Event::Eof) => return Err("no EMailAddress in the request"),
            Err(_) => return Err("the request is not well-formed XML"),
            Ok(_) => {}
        }
        buf.clear();
    }
}

fn protocol(d: &mut Doc, kind: &str, hostname: &str, address: &str, e: &Endpoint) {
    d.open("Protocol", "");
    d.leaf("Type", kind).leaf("Server", hostname).leaf("Port", &e.port.to_string());
    d.leaf("DomainRequired", "off").leaf("LoginName", address).leaf("SPA", "off");
    // `SSL` is what older clients read; `Encryption` (which wins where both
    // are understood) tells implicit TLS from STARTTLS.
    let (ssl, encryption) = match e.security {
        Security::ImplicitTls => ("on", "SSL"),
        Security::Starttls => ("on", "TLS"),
    };
    d.leaf("SSL", ssl).leaf("Encryption", encryption).leaf("AuthRequired", "on");
    if kind == "SMTP" {
        d.leaf("UsePOPAuth", "on").leaf("SMTPLast", "off");
    }
    d.close("Protocol");
}

/// The response for `address`, whose mail is served by `hostname`.
pub(crate) fn document(address: &str, hostname: &str, services: &MailServices) -> String {
    let mut d = Doc::new("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    d.open("Autodiscover", "xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\"");
    d.open("Response", "xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\"");
    d.open("Account", "");
    d.leaf("AccountType", "email").leaf("Action", "settings");
    for e in &services.imap {
        protocol(&mut d, "IMAP", hostname, address, e);
    }
    for e in &services.submission {
        protocol(&mut d, "SMTP", hostname, address, e);
    }
    d.close("Account");
    d.close("Response");
    d.close("Autodiscover");
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::requested_address;

    const OUTLOOK: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>alice&amp;co@example.org</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#;

    #[test]
    fn the_address_is_read_from_the_request() {
        assert_eq!(requested_address(OUTLOOK.as_bytes()).unwrap(), "alice&co@example.org");
        let prefixed = "<a:Autodiscover xmlns:a=\"x\"><a:Request><a:EMailAddress> bob@example.org </a:EMailAddress></a:Request></a:Autodiscover>";
        assert_eq!(requested_address(prefixed.as_bytes()).unwrap(), "bob@example.org");
        let cdata = "<Request><EMailAddress><![CDATA[c<d@example.org]]></EMailAddress></Request>";
        assert_eq!(requested_address(cdata.as_bytes()).unwrap(), "c<d@example.org");
        for bad in ["", "<a>", "<Request><EMailAddress></EMailAddress></Request>", "<Request></Request>", "\u{0}<<"] {
            assert!(requested_address(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
