//! WebPush subscriptions as clients write and read them through METADATA
//! (COI spec R32, R35, R36).
//!
//! A request is checked the way Dovecot checks it, with Dovecot's error texts
//! (clients only look at the response code, but operators compare logs), and
//! with the spec's extra `msgtype` spellings accepted (§6). The stored form is
//! the exact JSON clients read back (R35), so it never holds a secret; the
//! validation secret is kept elsewhere by the caller (R10).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT};
use serde_json::{Map, Value};

/// Longest string value accepted anywhere in a subscription (Dovecot's limit).
const MAX_VALUE: usize = 1024;
/// Longest subscription id (Dovecot's device-key limit).
const MAX_ID: usize = 256;
/// Most `exclude_from` addresses (Dovecot ≥ 2.3.11).
const MAX_EXCLUDES: usize = 10;
const MSGTYPES: [&str; 5] = ["chat", "mail", "email", "all", "any"];

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// Not JSON, not an object, or a value of the wrong type, length or
    /// spelling: what Dovecot's parser rejects (`Invalid JSON: Unknown msgtype`
    /// was observed on the wire).
    #[error("Invalid JSON: {0}")]
    Json(String),
    /// Well-formed, but something required is missing or unusable.
    #[error("Invalid subscription: {0}")]
    Invalid(String),
    /// The subscription id (the last METADATA entry name component).
    #[error("{0}")]
    Id(String),
}

/// One subscription, as stored and as shown to clients (R35).
#[derive(Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Unix seconds when the server accepted the request.
    pub created: i64,
    pub validated: bool,
    pub client: String,
    pub device: String,
    /// Exactly as the client sent it: clients compare what they read back (§6).
    pub msgtype: String,
    pub exclude_from: Option<Vec<String>>,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

impl std::fmt::Debug for Subscription {
    // `auth` is the shared secret of RFC 8291: with it (and the push service's copy of a message)
    // a log reader could decrypt pushes. The rest is what the client itself reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("created", &self.created)
            .field("validated", &self.validated)
            .field("client", &self.client)
            .field("device", &self.device)
            .field("msgtype", &self.msgtype)
            .field("exclude_from", &self.exclude_from)
            .field("endpoint", &self.endpoint)
            .field("p256dh", &self.p256dh)
            .field("auth", &"<redacted>")
            .finish()
    }
}

/// Checks a subscription id: Dovecot's superset of the spec's `[0-9A-Za-z_-]{10,36}`
/// (§6), so that every id Dovecot took keeps working after a migration.
pub fn check_id(id: &str) -> Result<(), SubscriptionError> {
    let err = |text: &str| Err(SubscriptionError::Id(text.to_owned()));
    // Dovecot tests `/` first: `<id>/validate` is a different entry and
    // anything else below an id must get this specific text.
    if id.contains('/') {
        return err("Device key must not contain '/'");
    }
    if id.is_empty() {
        return err("Device key must not be empty");
    }
    if id.len() > MAX_ID {
        return err("Device key is too long");
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return err("Device key has invalid characters");
    }
    Ok(())
}

/// Parses a client's subscription request (R32). The result is unvalidated
/// and created `now_unix`; unknown keys are dropped, not stored.
pub fn parse_request(json: &[u8], now_unix: i64) -> Result<Subscription, SubscriptionError> {
    let root = parse_object(json)?;
    parse_fields(&root, now_unix, false)
}

impl Subscription {
    /// The compact JSON clients read back (R35); also the stored form. Key order
    /// follows Dovecot's output, which the OX client was tested against.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("{\"created\":");
        out.push_str(&json_string(&rfc3339(self.created)));
        out.push_str(",\"validated\":");
        out.push_str(if self.validated { "true" } else { "false" });
        for (key, value) in [("client", &self.client), ("device", &self.device), ("msgtype", &self.msgtype)] {
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":");
            out.push_str(&json_string(value));
        }
        if let Some(list) = &self.exclude_from {
            out.push_str(",\"exclude_from\":[");
            for (i, address) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(address));
            }
            out.push(']');
        }
        out.push_str(",\"resource\":{\"endpoint\":");
        out.push_str(&json_string(&self.endpoint));
        out.push_str(",\"keys\":{\"p256dh\":");
        out.push_str(&json_string(&self.p256dh));
        out.push_str(",\"auth\":");
        out.push_str(&json_string(&self.auth));
        out.push_str("}}}");
        out
    }

    /// Reads what [`Subscription::to_json`] wrote, with the same checks as a
    /// request: a stored entry that no longer passes them is unusable.
    pub fn from_stored(json: &[u8]) -> Result<Subscription, SubscriptionError> {
        let root = parse_object(json)?;
        let created = match root.get("created") {
            Some(Value::String(s)) => {
                parse_rfc3339(s).ok_or_else(|| SubscriptionError::Json("created: Invalid value".into()))?
            }
            Some(_) => return Err(SubscriptionError::Json("created: Expected string".into())),
            None => return Err(SubscriptionError::Invalid("created is missing".into())),
        };
        parse_fields(&root, created, true)
    }

    /// Whether a message of this kind is pushed to this subscription (R36).
    pub fn wants(&self, is_chat: bool) -> bool {
        match self.msgtype.as_str() {
            "chat" => is_chat,
            "mail" | "email" => !is_chat,
            "all" | "any" => true,
            _ => false,
        }
    }

    /// The client's P-256 public key (65 bytes, uncompressed point).
    pub fn p256dh_bytes(&self) -> Option<Vec<u8>> {
        decode_key(&self.p256dh).filter(|k| is_p256_point(k))
    }

    /// The client's 16-byte authentication secret.
    pub fn auth_bytes(&self) -> Option<Vec<u8>> {
        decode_key(&self.auth).filter(|k| k.len() == 16)
    }

    /// Whether `from` (the message's From address) is excluded (R36). Exact
    /// comparison, as in Dovecot: the client chose the spelling it wants matched.
    pub fn excludes(&self, from: &str) -> bool {
        self.exclude_from.as_ref().is_some_and(|list| list.iter().any(|a| a == from))
    }
}

fn parse_object(json: &[u8]) -> Result<Map<String, Value>, SubscriptionError> {
    match serde_json::from_slice::<Value>(json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(SubscriptionError::Json("Expected object".into())),
        Err(e) => Err(SubscriptionError::Json(e.to_string())),
    }
}

/// The checks a request and a stored entry share. `stored` adds `validated`;
/// a request's own `validated` (or `created`) is ignored like any unknown key.
fn parse_fields(root: &Map<String, Value>, created: i64, stored: bool) -> Result<Subscription, SubscriptionError> {
    // Dovecot reports the first missing field in this order.
    let client = required_string(root, "client", "client")?;
    let device = required_string(root, "device", "device")?;
    let msgtype = required_string(root, "msgtype", "msgtype")?;
    if !MSGTYPES.contains(&msgtype.as_str()) {
        return Err(SubscriptionError::Json("Unknown msgtype".into()));
    }
    let resource = match root.get("resource") {
        Some(Value::Object(map)) => map,
        Some(_) => return Err(SubscriptionError::Json("resource: Expected object".into())),
        None => return Err(missing("resource { endpoint }")),
    };
    let endpoint = required_string(resource, "endpoint", "resource { endpoint }")?;
    let keys = match resource.get("keys") {
        Some(Value::Object(map)) => map,
        Some(_) => return Err(SubscriptionError::Json("keys: Expected object".into())),
        None => return Err(missing("resource { keys }")),
    };
    if let Some(other) = keys.keys().find(|k| *k != "p256dh" && *k != "auth") {
        let shown: String = other.chars().take(64).collect();
        return Err(SubscriptionError::Invalid(format!("Unknown resource key '{shown}'")));
    }
    let p256dh = required_string(keys, "p256dh", "resource { key { p256dh } }")?;
    let auth = required_string(keys, "auth", "resource { key { auth } }")?;
    let exclude_from = match root.get("exclude_from") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            if items.len() > MAX_EXCLUDES {
                return Err(SubscriptionError::Json("exclude_from: Too many addresses".into()));
            }
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => list.push(limited(s, "exclude_from")?),
                    _ => return Err(SubscriptionError::Json("exclude_from: Expected string".into())),
                }
            }
            Some(list)
        }
        Some(_) => return Err(SubscriptionError::Json("exclude_from: Expected array".into())),
    };
    // Checked here rather than at push time so that a client learns about a
    // typo while it can still show an error, not by never getting a push.
    if let Err(e) = super::http::Endpoint::parse(&endpoint) {
        return Err(SubscriptionError::Invalid(format!("resource {{ endpoint }} is invalid: {e}")));
    }
    if !decode_key(&p256dh).is_some_and(|k| is_p256_point(&k)) {
        return Err(SubscriptionError::Invalid(
            "resource { key { p256dh } } must be a base64url uncompressed P-256 point".into(),
        ));
    }
    if decode_key(&auth).map(|k| k.len()) != Some(16) {
        return Err(SubscriptionError::Invalid("resource { key { auth } } must be 16 base64url-encoded bytes".into()));
    }
    let validated = if stored {
        match root.get("validated") {
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(SubscriptionError::Json("validated: Expected boolean".into())),
            None => return Err(missing("validated")),
        }
    } else {
        false
    };
    Ok(Subscription { created, validated, client, device, msgtype, exclude_from, endpoint, p256dh, auth })
}

fn missing(what: &str) -> SubscriptionError {
    SubscriptionError::Invalid(format!("{what} is missing"))
}

fn required_string(map: &Map<String, Value>, key: &str, shown: &str) -> Result<String, SubscriptionError> {
    match map.get(key) {
        Some(Value::String(s)) => limited(s, key),
        Some(_) => Err(SubscriptionError::Json(format!("{key}: Expected string"))),
        None => Err(missing(shown)),
    }
}

fn limited(s: &str, key: &str) -> Result<String, SubscriptionError> {
    if s.len() > MAX_VALUE {
        return Err(SubscriptionError::Json(format!("{key}: Value too long")));
    }
    Ok(s.to_owned())
}

/// base64url as the spec says, padding optional; standard base64 is taken too
/// because some push libraries emit it and the bytes are unambiguous either way.
fn decode_key(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    URL_SAFE_PAD_INDIFFERENT.decode(text).or_else(|_| STANDARD_PAD_INDIFFERENT.decode(text)).ok()
}

/// RFC 8291 needs the uncompressed form; curve membership is left to the ECDH
/// of the validation push, which fails cleanly on a bad point.
fn is_p256_point(key: &[u8]) -> bool {
    key.len() == 65 && key.first() == Some(&0x04)
}

/// A JSON string literal. `Value`'s `Display` cannot fail, unlike `to_string`.
fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Unix seconds as RFC 3339 in UTC with a numeric offset
/// (`1970-01-01T00:00:00+00:00`), Dovecot's form for `created` (§8 item 4)
/// and for the push payload's `date`.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Howard Hinnant's `civil_from_days`: proleptic Gregorian date of a day
/// number relative to 1970-01-01. Pure i64 arithmetic, so no input overflows.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`]; `month` 1..=12.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of a civil UTC time. Callers check the ranges; out-of-range
/// fields just roll over.
pub(crate) fn unix_time(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> i64 {
    days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
}

/// Days in `month` (1..=12) of `year`; `None` for a month out of range.
pub(crate) fn month_len(year: i64, month: i64) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => Some(31),
        4 | 6 | 9 | 11 => Some(30),
        2 if leap => Some(29),
        2 => Some(28),
        _ => None,
    }
}

/// Parses `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)` to Unix seconds. Only what
/// `created` can hold; strict so a corrupted entry is noticed, not misread.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=month_len(year, month)?).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = b.get(19..)?;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = frac.get(n..)?;
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let [h1, h2, m1, m2] = digits.map(|d| i64::from(d - b'0'));
            let (oh, om) = (h1 * 10 + h2, m1 * 10 + m2);
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = oh * 3600 + om * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    Some(unix_time(year, month, day, hour, minute, second) - offset)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // A valid uncompressed point prefix is all the parser checks.
    fn p256dh() -> String {
        let mut key = vec![0x04u8];
        key.extend(1..=64u8);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
    }

    fn auth() -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 16])
    }

    fn request(msgtype: &str) -> String {
        format!(
            r#"{{"client":"OX COI Messenger","device":"test-device","msgtype":"{msgtype}","extra":1,
               "resource":{{"endpoint":"https://push.example.test/push/send/1","other":"x",
               "keys":{{"p256dh":"{}","auth":"{}"}}}}}}"#,
            p256dh(),
            auth()
        )
    }

    fn invalid(json: &str) -> String {
        match parse_request(json.as_bytes(), 0) {
            Err(e) => e.to_string(),
            Ok(s) => panic!("accepted {s:?}"),
        }
    }

    #[test]
    fn ids() {
        check_id("31754ee7-d3ee-4226-b112-6895ed26fcf8").unwrap();
        check_id("x").unwrap();
        check_id(&"a".repeat(256)).unwrap();
        check_id("a!#$%&'*+.^`|~\"").unwrap();
        assert_eq!(check_id("a/b").unwrap_err().to_string(), "Device key must not contain '/'");
        assert_eq!(check_id("a/validate").unwrap_err().to_string(), "Device key must not contain '/'");
        assert_eq!(check_id(&"a".repeat(257)).unwrap_err().to_string(), "Device key is too long");
        for bad in ["", "a b", "a\tb", "a\u{7f}", "ä", "a\nb"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_accepted_and_unknown_keys_dropped() {
        let sub = parse_request(request("chat").as_bytes(), 1_795_582_460).unwrap();
        assert_eq!(sub.created, 1_795_582_460);
        assert!(!sub.validated);
        assert_eq!(
            (sub.client.as_str(), sub.device.as_str(), sub.msgtype.as_str()),
            ("OX COI Messenger", "test-device", "chat")
        );
        assert_eq!(sub.endpoint, "https://push.example.test/push/send/1");
        assert_eq!(sub.exclude_from, None);
        assert_eq!(sub.p256dh_bytes().unwrap().len(), 65);
        assert_eq!(sub.auth_bytes().unwrap(), vec![7u8; 16]);
        let json = sub.to_json();
        assert!(!json.contains("extra") && !json.contains("other"), "{json}");
    }

    #[test]
    fn all_msgtypes_kept_as_sent() {
        for t in MSGTYPES {
            let sub = parse_request(request(t).as_bytes(), 0).unwrap();
            assert_eq!(sub.msgtype, t);
            assert!(sub.to_json().contains(&format!("\"msgtype\":\"{t}\"")));
        }
        assert_eq!(invalid(&request("Chat")), "Invalid JSON: Unknown msgtype");
        assert_eq!(invalid(&request("inactive")), "Invalid JSON: Unknown msgtype");
    }

    #[test]
    fn wants_by_msgtype() {
        let sub = |t: &str| parse_request(request(t).as_bytes(), 0).unwrap();
        assert!(sub("chat").wants(true) && !sub("chat").wants(false));
        for t in ["mail", "email"] {
            assert!(!sub(t).wants(true) && sub(t).wants(false));
        }
        for t in ["all", "any"] {
            assert!(sub(t).wants(true) && sub(t).wants(false));
        }
    }

    #[test]
    fn missing_fields_named_like_dovecot() {
        let keys = format!(r#""keys":{{"p256dh":"{}","auth":"{}"}}"#, p256dh(), auth());
        let cases = [
            (r#"{"device":"d","msgtype":"chat"}"#.to_owned(), "Invalid subscription: client is missing"),
            (r#"{"client":"c","msgtype":"chat"}"#.to_owned(), "Invalid subscription: device is missing"),
            (r#"{"client":"c","device":"d"}"#.to_owned(), "Invalid subscription: msgtype is missing"),
            (
                r#"{"client":"c","device":"d","msgtype":"chat"}"#.to_owned(),
                "Invalid subscription: resource { endpoint } is missing",
            ),
            (
                format!(r#"{{"client":"c","device":"d","msgtype":"chat","resource":{{{keys}}}}}"#),
                "Invalid subscription: resource { endpoint } is missing",
            ),
            (
                r#"{"client":"c","device":"d","msgtype":"chat","resource":{"endpoint":"https://p/"}}"#.to_owned(),
                "Invalid subscription: resource { keys } is missing",
            ),
            (
                r#"{"client":"c","device":"d","msgtype":"chat","resource":{"endpoint":"https://p/","keys":{"auth":"x"}}}"#.to_owned(),
                "Invalid subscription: resource { key { p256dh } } is missing",
            ),
            (
                format!(r#"{{"client":"c","device":"d","msgtype":"chat","resource":{{"endpoint":"https://p/","keys":{{"p256dh":"{}"}}}}}}"#, p256dh()),
                "Invalid subscription: resource { key { auth } } is missing",
            ),
        ];
        for (json, want) in cases {
            assert_eq!(invalid(&json), want, "{json}");
        }
    }

    #[test]
    fn malformed_and_wrong_types() {
        for json in ["", "nope", "{", "[1]", "\"s\"", "null", "{\"client\":\"c\",}"] {
            assert!(invalid(json).starts_with("Invalid JSON: "), "{json}");
        }
        let json = request("chat").replace("\"OX COI Messenger\"", "42");
        assert_eq!(invalid(&json), "Invalid JSON: client: Expected string");
        let json = request("chat").replace("\"OX COI Messenger\"", &format!("\"{}\"", "c".repeat(1025)));
        assert_eq!(invalid(&json), "Invalid JSON: client: Value too long");
        let json = request("chat").replace("\"OX COI Messenger\"", &format!("\"{}\"", "c".repeat(1024)));
        parse_request(json.as_bytes(), 0).unwrap();
        assert!(
            invalid(&request("chat").replace(r#""keys":{"#, r#""keys":{"x":"y","#))
                .contains("Unknown resource key 'x'")
        );
        assert!(
            invalid(&request("chat").replace("https://push.example.test", "ftp://x")).contains("endpoint } is invalid")
        );
    }

    #[test]
    fn key_material_checked() {
        let short = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([4u8; 33]);
        assert!(invalid(&request("chat").replace(&p256dh(), &short)).contains("p256dh"));
        let mut key = vec![0x02u8];
        key.extend([1u8; 64]);
        let compressed_tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
        assert!(invalid(&request("chat").replace(&p256dh(), &compressed_tag)).contains("p256dh"));
        assert!(invalid(&request("chat").replace(&p256dh(), "!!!")).contains("p256dh"));
        let long_auth = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 17]);
        assert!(invalid(&request("chat").replace(&auth(), &long_auth)).contains("auth"));
        // Padding is optional; standard base64 is tolerated.
        let padded = base64::engine::general_purpose::URL_SAFE.encode([7u8; 16]);
        parse_request(request("chat").replace(&auth(), &padded).as_bytes(), 0).unwrap();
        let standard = base64::engine::general_purpose::STANDARD.encode([0xfbu8; 16]);
        assert!(standard.contains('+') || standard.contains('/'));
        let sub = parse_request(request("chat").replace(&auth(), &standard).as_bytes(), 0).unwrap();
        assert_eq!(sub.auth_bytes().unwrap(), vec![0xfbu8; 16]);
    }

    #[test]
    fn exclude_from() {
        let with = |list: &str| request("any").replacen('{', &format!("{{\"exclude_from\":{list},"), 1);
        let sub = parse_request(with(r#"["bob@example.test","Carol@x"]"#).as_bytes(), 0).unwrap();
        assert!(sub.excludes("bob@example.test"));
        assert!(!sub.excludes("Bob@example.test"));
        assert!(!sub.excludes("carol@x"));
        assert!(sub.to_json().contains(r#""exclude_from":["bob@example.test","Carol@x"],"resource""#));
        let ten: Vec<String> = (0..10).map(|i| format!("\"a{i}@x\"")).collect();
        parse_request(with(&format!("[{}]", ten.join(","))).as_bytes(), 0).unwrap();
        let eleven: Vec<String> = (0..11).map(|i| format!("\"a{i}@x\"")).collect();
        assert!(invalid(&with(&format!("[{}]", eleven.join(",")))).contains("Too many"));
        assert!(invalid(&with("[1]")).contains("Expected string"));
        assert!(invalid(&with("\"a@x\"")).contains("Expected array"));
        let empty = parse_request(with("[]").as_bytes(), 0).unwrap();
        assert_eq!(empty.exclude_from, Some(vec![]));
        assert!(!empty.excludes(""));
        assert!(!parse_request(request("chat").as_bytes(), 0).unwrap().excludes("bob@example.test"));
    }

    #[test]
    fn stored_json_exact_and_round_trip() {
        let mut sub = parse_request(request("chat").as_bytes(), 1_795_582_460).unwrap();
        let want = format!(
            concat!(
                r#"{{"created":"2026-11-25T04:54:20+00:00","validated":false,"client":"OX COI Messenger","#,
                r#""device":"test-device","msgtype":"chat","resource":{{"endpoint":"https://push.example.test/push/send/1","#,
                r#""keys":{{"p256dh":"{}","auth":"{}"}}}}}}"#
            ),
            p256dh(),
            auth()
        );
        assert_eq!(sub.to_json(), want);
        assert_eq!(Subscription::from_stored(want.as_bytes()).unwrap(), sub);
        sub.validated = true;
        sub.exclude_from = Some(vec!["a\"b@x".into()]);
        sub.client = "quote \" backslash \\ newline \n ünï".into();
        let back = Subscription::from_stored(sub.to_json().as_bytes()).unwrap();
        assert_eq!(back, sub);
        // Dovecot-written entries with another offset or `Z` still read.
        let other = want.replace("2026-11-25T04:54:20+00:00", "2026-11-25T05:54:20.123+01:00");
        assert_eq!(Subscription::from_stored(other.as_bytes()).unwrap().created, 1_795_582_460);
        let bad = want.replace("2026-11-25T04:54:20+00:00", "yesterday");
        assert!(Subscription::from_stored(bad.as_bytes()).is_err());
        let no_validated = want.replace(r#""validated":false,"#, "");
        assert!(Subscription::from_stored(no_validated.as_bytes()).is_err());
    }

    #[test]
    fn debug_hides_the_auth_secret() {
        let sub = parse_request(request("chat").as_bytes(), 0).unwrap();
        let shown = format!("{sub:?}");
        assert!(!shown.contains(&auth()), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("push.example.test"), "{shown}");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(rfc3339(86_399), "1970-01-01T23:59:59+00:00");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59+00:00");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00+00:00"); // leap by the 400 rule
        assert_eq!(rfc3339(951_868_800), "2000-03-01T00:00:00+00:00");
        assert_eq!(rfc3339(1_709_164_800), "2024-02-29T00:00:00+00:00");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00+00:00"); // 2100 is not a leap year
        assert_eq!(rfc3339(1_575_471_097), "2019-12-04T14:51:37+00:00");
        assert_eq!(rfc3339(1_795_582_460), "2026-11-25T04:54:20+00:00");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59+00:00");
        // Absurd values must not panic.
        let _ = rfc3339(i64::MAX);
        let _ = rfc3339(i64::MIN);
    }

    #[test]
    fn rfc3339_round_trip() {
        for t in [0, -1, 59, 951_782_399, 951_782_400, 1_709_251_199, 1_795_582_460, 4_107_542_400, 253_402_300_799] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{t}");
        }
        for t in (-86_400 * 800..86_400 * 800).step_by(86_400 * 7 + 3601) {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{t}");
        }
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("1969-12-31T19:00:00-05:00"), Some(0));
        for bad in [
            "",
            "1970-01-01",
            "1970-01-01T00:00:00",
            "1970-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "1970-01-01T24:00:00Z",
            "1970-01-01T00:00:00+0000",
            "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00Zjunk",
            "197x-01-01T00:00:00Z",
            "1970-01-01T00:00:00+ä:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_some());
    }
}
