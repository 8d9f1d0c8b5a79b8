//! What ACME keeps on disk, under `<data>/acme/<CA>/` (one directory per CA, so switching
//! between staging and production keeps both accounts): `account.json` (the account key and
//! URL), `key.pem` and `cert.pem` (the certificate and its chain). All mode 0600.

use super::AcmeError;
use crate::tls::write_file;
use instant_acme::AccountCredentials;
use std::path::{Path, PathBuf};

/// The directory of one CA's files under `acme_dir`: the directory URL's host and port.
pub fn ca_dir(acme_dir: &Path, directory_url: &str) -> PathBuf {
    let rest = directory_url.split_once("://").map_or(directory_url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let safe: String =
        authority.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    // Never "." or "..": the name must stay below `acme_dir`.
    acme_dir.join(if safe.chars().all(|c| c == '.') { "ca".to_owned() } else { safe })
}

pub fn cert_path(dir: &Path) -> PathBuf {
    dir.join("cert.pem")
}

pub fn key_path(dir: &Path) -> PathBuf {
    dir.join("key.pem")
}

fn account_path(dir: &Path) -> PathBuf {
    dir.join("account.json")
}

/// The stored account, if any.
pub fn load_account(dir: &Path) -> Result<Option<AccountCredentials>, AcmeError> {
    let path = account_path(dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(AcmeError::Io { path, source }),
    };
    serde_json::from_slice(&text).map(Some).map_err(|e| AcmeError::Other(format!("{}: {e}", path.display())))
}

pub fn save_account(dir: &Path, credentials: &AccountCredentials) -> Result<(), AcmeError> {
    let json = serde_json::to_vec(credentials).map_err(|e| AcmeError::Other(format!("account: {e}")))?;
    write_file(&account_path(dir), &json, 0o600, true)?;
    Ok(())
}

/// Writes a new key and chain, each replaced atomically; the key first, so a crash in between
/// leaves a pair that fails to load (key mismatch) and is issued again, never a wrong pair served.
pub fn save_certificate(dir: &Path, chain_pem: &str, key_pem: &str) -> Result<(), AcmeError> {
    write_file(&key_path(dir), key_pem.as_bytes(), 0o600, true)?;
    write_file(&cert_path(dir), chain_pem.as_bytes(), 0o600, true)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_directory_per_ca() {
        let base = Path::new("/d/acme");
        assert_eq!(
            ca_dir(base, "https://acme-v02.api.letsencrypt.org/directory"),
            base.join("acme-v02.api.letsencrypt.org")
        );
        assert_eq!(ca_dir(base, "https://127.0.0.1:14000/dir"), base.join("127.0.0.1_14000"));
        assert_eq!(ca_dir(base, "https://../x"), base.join("ca"));
        assert_eq!(ca_dir(base, "https://"), base.join("ca"));
    }

    #[test]
    fn certificate_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        save_certificate(&ca, "chain", "key").unwrap();
        save_certificate(&ca, "chain2", "key2").unwrap();
        for p in [cert_path(&ca), key_path(&ca)] {
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_to_string(cert_path(&ca)).unwrap(), "chain2");
        assert!(load_account(&ca).unwrap().is_none());
    }
}
