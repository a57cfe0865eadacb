//! The page's cross-site request forgery defence: a per-browser nonce in a `SameSite=Strict`,
//! `HttpOnly` cookie, and in every form a token that is the HMAC of that nonce and the
//! approver's principal id under a key only the server holds.
//!
//! A POST is honoured only when the cookie came with it (a cross-site request carries no
//! `SameSite=Strict` cookie), the form carries the token, and the token is the one this
//! server would compute for the *authenticated* approver and that nonce (compared in constant
//! time). A token copied from another approver's page, or a nonce from another browser, does
//! not match. Uses nothing but `hmac`/`sha2`/`getrandom`; no state on the server.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::CSRF_COOKIE as COOKIE;
/// Bytes of a nonce and of the key (hex doubles them in the cookie).
pub(crate) const NONCE_LEN: usize = 32;
/// Domain separation of the token from any other HMAC under the same key.
const DOMAIN: &[u8] = b"guardrail-approvals-csrf-v1\0";

/// The server's key of the tokens.
#[derive(Clone)]
pub(crate) struct CsrfKey([u8; NONCE_LEN]);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey([REDACTED])")
    }
}

impl CsrfKey {
    pub(crate) fn from_bytes(bytes: [u8; NONCE_LEN]) -> CsrfKey {
        CsrfKey(bytes)
    }

    /// A fresh key from the operating system's random source.
    pub(crate) fn random() -> Result<CsrfKey, getrandom::Error> {
        let mut key = [0u8; NONCE_LEN];
        getrandom::fill(&mut key)?;
        Ok(CsrfKey(key))
    }

    /// The MAC over `principal` and `nonce`; `None` only if HMAC refused the key, which it
    /// never does for 32 bytes (callers then fail closed).
    fn mac(&self, principal: &str, nonce: &str) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).ok()?;
        mac.update(DOMAIN);
        mac.update(&(principal.len() as u64).to_be_bytes());
        mac.update(principal.as_bytes());
        mac.update(nonce.as_bytes());
        Some(mac)
    }

    /// The token of the forms shown to `principal` in the browser holding `nonce`.
    pub(crate) fn token(&self, principal: &str, nonce: &str) -> Option<String> {
        Some(hex::encode(
            self.mac(principal, nonce)?.finalize().into_bytes(),
        ))
    }

    /// True if `token` is the token of `principal` and `nonce` (constant time).
    pub(crate) fn verify(&self, principal: &str, nonce: &str, token: &str) -> bool {
        let Ok(bytes) = hex::decode(token) else {
            return false;
        };
        self.mac(principal, nonce)
            .is_some_and(|mac| mac.verify_slice(&bytes).is_ok())
    }
}

/// A fresh nonce for a browser, as hex.
pub(crate) fn new_nonce() -> Result<String, getrandom::Error> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)?;
    Ok(hex::encode(nonce))
}

/// True if `value` has the shape of a nonce this server issues (64 lowercase hex digits).
fn is_nonce(value: &str) -> bool {
    value.len() == NONCE_LEN * 2
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The nonce from the request's `Cookie` headers, if one of well-formed shape is there.
pub(crate) fn nonce_from_cookies(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && is_nonce(value))
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value issuing `nonce` for pages under `path`.
pub(crate) fn set_cookie(nonce: &str, path: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={nonce}; Path={path}; HttpOnly; SameSite=Strict{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_principal_nonce_and_key() {
        let key = CsrfKey::from_bytes([7; NONCE_LEN]);
        let nonce = "ab".repeat(NONCE_LEN);
        let token = key.token("po-kim", &nonce).unwrap();
        assert!(key.verify("po-kim", &nonce, &token));
        assert!(!key.verify("rae", &nonce, &token));
        assert!(!key.verify("po-kim", &"cd".repeat(NONCE_LEN), &token));
        assert!(!CsrfKey::from_bytes([8; NONCE_LEN]).verify("po-kim", &nonce, &token));
        assert!(!key.verify("po-kim", &nonce, ""));
        assert!(!key.verify("po-kim", &nonce, "not hex"));
    }

    #[test]
    fn cookies_are_read_by_name_and_shape() {
        let nonce = "0f".repeat(NONCE_LEN);
        let mut headers = axum::http::HeaderMap::new();
        headers.append(
            axum::http::header::COOKIE,
            format!("other=1; {COOKIE}={nonce}").parse().unwrap(),
        );
        assert_eq!(nonce_from_cookies(&headers), Some(nonce));
        let mut bad = axum::http::HeaderMap::new();
        bad.append(
            axum::http::header::COOKIE,
            format!("{COOKIE}=<script>").parse().unwrap(),
        );
        assert_eq!(nonce_from_cookies(&bad), None);
    }
}
