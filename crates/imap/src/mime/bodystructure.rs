//! BODY and BODYSTRUCTURE (RFC 3501 §7.4.2, RFC 9051 §7.5.2): the
//! non-extensible form, and the extensible one with extension data
//! (body-ext-1part: MD5, disposition, language, location; body-ext-mpart:
//! parameters, disposition, language, location).
//!
//! message/global (RFC 6532 §3.7) is written like message/rfc822 (with
//! envelope, body and lines) only to IMAP4rev2 sessions, whose grammar
//! has it (RFC 9051 §9 media-message); IMAP4rev1 knows it as a basic type.

use super::envelope::nstring;
use super::params::Params;
use super::structure::{Kind, Part};
use crate::encode;
use std::io::Write as _;

/// How to write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Form {
    /// BODYSTRUCTURE (with extension data) rather than BODY.
    pub extended: bool,
    /// UTF-8 may be quoted (UTF8=ACCEPT or IMAP4rev2 enabled).
    pub utf8: bool,
    /// IMAP4rev2 enabled.
    pub rev2: bool,
}

/// Writes `body` for `part`.
pub(crate) fn write(out: &mut Vec<u8>, part: &Part, form: Form) {
    let Form { extended, utf8, .. } = form;
    out.push(b'(');
    match &part.kind {
        Kind::Multipart(children) => {
            // body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
            for c in children {
                write(out, c, form);
            }
            if children.is_empty() {
                out.extend_from_slice(b"(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0)");
            }
            out.push(b' ');
            encode::string(out, &part.info.subtype, utf8);
            if extended {
                out.push(b' ');
                params(out, &part.info.params, utf8);
                ext_common(out, part, utf8);
            }
        }
        kind => {
            one_part(out, part, utf8);
            let global = part.info.is("MESSAGE", Some("GLOBAL"));
            if let Kind::Message(m) = kind
                && (form.rev2 || !global)
            {
                // body-type-msg: ... SP envelope SP body SP body-fld-lines
                out.push(b' ');
                m.write_envelope(out, utf8);
                out.push(b' ');
                write(out, &m.root, form);
                {
                    let _ = write!(out, " {}", part.lines);
                };
            } else if part.info.is("TEXT", None) {
                {
                    let _ = write!(out, " {}", part.lines);
                };
            }
            if extended {
                out.push(b' ');
                nstring(out, part.info.md5.as_deref(), utf8);
                ext_common(out, part, utf8);
            }
        }
    }
    out.push(b')');
}

/// media-type SP body-fields: type, subtype, parameters, id,
/// description, encoding (7BIT by default), size in octets as encoded.
fn one_part(out: &mut Vec<u8>, part: &Part, utf8: bool) {
    let i = &part.info;
    encode::string(out, &i.kind, utf8);
    out.push(b' ');
    encode::string(out, &i.subtype, utf8);
    out.push(b' ');
    params(out, &i.params, utf8);
    out.push(b' ');
    nstring(out, i.id.as_deref(), utf8);
    out.push(b' ');
    nstring(out, i.description.as_deref(), utf8);
    out.push(b' ');
    encode::string(out, i.encoding.as_deref().unwrap_or(b"7BIT"), utf8);
    {
        let _ = write!(out, " {}", part.body.len());
    };
}

/// SP body-fld-dsp SP body-fld-lang SP body-fld-loc.
fn ext_common(out: &mut Vec<u8>, part: &Part, utf8: bool) {
    let i = &part.info;
    out.push(b' ');
    match &i.disposition {
        Some((kind, p)) => {
            out.push(b'(');
            encode::string(out, kind, utf8);
            out.push(b' ');
            params(out, p, utf8);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match &i.language {
        Some(tags) => {
            out.push(b'(');
            for (n, t) in tags.iter().enumerate() {
                if n > 0 {
                    out.push(b' ');
                }
                encode::string(out, t, utf8);
            }
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstring(out, i.location.as_deref(), utf8);
}

/// body-fld-param: `("NAME" "value" ...)`, or NIL when there is none
/// (an empty list `()` is not valid syntax).
fn params(out: &mut Vec<u8>, params: &Params, utf8: bool) {
    if params.is_empty() {
        return out.extend_from_slice(b"NIL");
    }
    out.push(b'(');
    for (n, (name, value)) in params.iter().enumerate() {
        if n > 0 {
            out.push(b' ');
        }
        encode::string(out, &name.to_ascii_uppercase(), utf8);
        out.push(b' ');
        encode::string(out, value, utf8);
    }
    out.push(b')');
}
