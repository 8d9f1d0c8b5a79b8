//! One ACME issuance (RFC 8555 §7.4): order the names, answer each pending authorization's
//! challenge, finalize with a CSR for a new key, download the chain.

use super::{AcmeError, Issuer};
use crate::config::AcmeChallenge;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, Order, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use std::time::Duration;

/// How long the CA may take to validate every name, and then to issue.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(180);
const ISSUANCE_TIMEOUT: Duration = Duration::from_secs(120);

/// A challenge response put in place, to take away once the order is decided.
enum Placed {
    TlsAlpn(String),
    Http(String),
}

/// A new certificate: PEM chain and PEM key.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Orders a certificate for `names` (the first becomes its subject) and returns it once issued.
pub async fn issue(issuer: &Issuer, account: &Account, names: &[String]) -> Result<Issued, AcmeError> {
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut placed = Vec::new();
    let ready = authorize(issuer, &mut order, &mut placed).await;
    let ready = match ready {
        Ok(()) => order.poll_ready(&RetryPolicy::new().timeout(VALIDATION_TIMEOUT)).await.map_err(AcmeError::from),
        Err(e) => Err(e),
    };
    // The CA has decided (or we gave up): no response stays in place.
    for p in placed {
        match p {
            Placed::TlsAlpn(name) => issuer.certs.clear_challenge(&name),
            Placed::Http(token) => issuer.http01.remove(&token),
        }
    }
    match ready {
        Ok(OrderStatus::Ready) => {}
        // The order failed; the problem on it is general, the authorizations say which names.
        Ok(_) | Err(AcmeError::Acme(instant_acme::Error::Api(_))) => {
            let (message, names) = failures(&mut order).await;
            return Err(AcmeError::Invalid { message, names });
        }
        Err(e) => return Err(e),
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    order.finalize_csr(csr.der()).await?;
    let chain_pem = order.poll_certificate(&RetryPolicy::new().timeout(ISSUANCE_TIMEOUT)).await?;
    Ok(Issued { chain_pem, key_pem: key.serialize_pem() })
}

/// Puts a response in place for each pending authorization and tells the CA to check it.
async fn authorize(issuer: &Issuer, order: &mut Order, placed: &mut Vec<Placed>) -> Result<(), AcmeError> {
    let kind = match issuer.challenge {
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        AcmeChallenge::Http01 => ChallengeType::Http01,
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            // Validated recently for this account: nothing to prove again.
            AuthorizationStatus::Valid => continue,
            status => {
                let name = authz.identifier().to_string();
                return Err(AcmeError::Rejected(format!("{name}: authorization is {status:?}")));
            }
        }
        let name = authz.identifier().to_string();
        let mut challenge = authz
            .challenge(kind.clone())
            .ok_or_else(|| AcmeError::Rejected(format!("{name}: the CA offers no {kind:?} challenge")))?;
        let key_authorization = challenge.key_authorization();
        match issuer.challenge {
            AcmeChallenge::TlsAlpn01 => {
                let cert = super::challenge::tls_alpn01_certificate(&name, key_authorization.digest().as_ref())?;
                issuer.certs.set_challenge(&name, cert);
                placed.push(Placed::TlsAlpn(name.clone()));
            }
            AcmeChallenge::Http01 => {
                issuer.http01.insert(&challenge.token, key_authorization.as_str());
                placed.push(Placed::Http(challenge.token.clone()));
            }
        }
        challenge.set_ready().await?;
        tracing::debug!(%name, challenge = ?kind, "ACME challenge ready");
    }
    Ok(())
}

/// Why an order did not become ready: each failed challenge's problem, as the CA put it, and
/// the names whose validation failed.
async fn failures(order: &mut Order) -> (String, Vec<String>) {
    let mut out = Vec::new();
    let mut names = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let Ok(mut authz) = authz else { continue };
        let Ok(state) = authz.refresh().await else { continue };
        let name = state.identifier().to_string();
        if state.status == AuthorizationStatus::Invalid {
            names.push(name.to_ascii_lowercase());
        }
        for c in &state.challenges {
            if let Some(problem) = &c.error {
                out.push(format!("{name}: {problem}"));
            }
        }
    }
    let message = if out.is_empty() {
        let state = order.state();
        state.error.as_ref().map_or_else(|| format!("order is {:?}", state.status), ToString::to_string)
    } else {
        out.join("; ")
    };
    (message, names)
}
