//! MIME for IMAP: the structure of a message (parts and their byte
//! ranges), ENVELOPE, BODY/BODYSTRUCTURE, body sections, BINARY decoding,
//! and a cache of parsed structures. FETCH (`cmd::fetch`) is the main
//! user; SEARCH/SORT/THREAD use [`ParsedMessage`].
//!
//! # Layout
//! - `header`: where a header ends, its fields, unfolding.
//! - `params`: Content-Type / Content-Disposition / Content-Language values.
//! - `address`: RFC 5322 address lists, raw (for ENVELOPE).
//! - `structure`: the part tree ([`Message`], [`Part`]); our own splitter,
//!   because mail-parser 0.11.9 drops parts of some nested multiparts.
//! - `envelope`, `bodystructure`: the FETCH response forms.
//! - `section`: part numbers -> parts; BODY[...] and BINARY[...] bytes.
//! - `decode`: transfer encodings, charsets, RFC 2047 encoded-words.
//! - `cache`: bounded LRU of structures keyed by body file.
//!
//! # Invariants
//! - Nothing here panics or allocates without bound on hostile input:
//!   every slice is bounds-checked, nesting and part counts are capped
//!   (`structure::MAX_DEPTH`, `structure::MAX_PARTS`).
//! - A [`Message`] holds byte offsets into the raw message it was parsed
//!   from and is only ever used with those same bytes (the cache checks
//!   blob, offset and size).
//!
//! # API for SEARCH, SORT and THREAD
//! ```ignore
//! let raw = store.read_message(&meta).await?;
//! let structure = ctx.mime_cache.get_or_parse(&meta, &raw); // or ParsedMessage::parse(&raw)
//! let msg = ParsedMessage::with_structure(&raw, structure);
//! msg.header("Subject");            // Option<String>: first field, unfolded, RFC 2047 decoded
//! msg.header_all("Received");       // Vec<String>, every occurrence, decoded
//! msg.headers();                    // Vec<(name, decoded value)>, all fields in order
//! msg.raw_header();                 // &[u8]: the header as sent (blank line included)
//! msg.addresses("From");            // Vec<Address { name, mailbox, host }>, names decoded, groups flattened
//! msg.address_lists("To");          // Vec<String>: each To field as `Name <a@b>, group: c@d;` (SEARCH TO)
//! msg.date();                       // Option<mail_parser::DateTime> of the Date field (.to_timestamp())
//! msg.message_ids("References");    // Vec<String>: msg-ids without <>
//! msg.text_parts();                 // Vec<TextPart>: every text/* leaf (nested messages too),
//!                                   // transfer-decoded and converted to UTF-8; TextPart::plain() strips HTML
//! ```
//! Cost: parsing a 1.5 KB message takes a few microseconds; decoding is
//! done on each call, so call each accessor once per message.

mod address;
mod bodystructure;
mod cache;
mod decode;
mod envelope;
mod header;
mod params;
mod parsed;
mod section;
mod structure;
#[cfg(test)]
mod tests;

pub(crate) use bodystructure::Form;
pub(crate) use cache::Cache;
pub(crate) use section::{Spec, binary, body as body_section, check_binary};
// For SEARCH, SORT and THREAD (see above).
#[allow(unused_imports)]
pub(crate) use parsed::{Address, ParsedMessage, TextPart};
pub(crate) use structure::Message;
