//! The seam between this crate and the ACME client: the plain HTTP listener
//! answers `GET /.well-known/acme-challenge/{token}` through an
//! [`Http01Responder`], which the ACME client implements. Without one (no
//! ACME configured) the route answers 404.

/// Answers ACME HTTP-01 challenges (RFC 8555 §8.3); the ACME client implements it.
pub trait Http01Responder: Send + Sync + 'static {
    fn key_authorization(&self, token: &str) -> Option<String>;
}

/// RFC 8555 §8.1: a token is base64url without padding. Anything else is
/// not a token we could have issued, so it never reaches the responder.
pub(crate) fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_base64url() {
        assert!(super::is_token("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"));
        for bad in ["", "a/b", "a.b", "..", "a=", "a b", &"a".repeat(257)] {
            assert!(!super::is_token(bad), "{bad:?}");
        }
    }
}
