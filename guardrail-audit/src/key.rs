//! Keyed tokens for identifiers and other PHI placed in events.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The secret that turns PHI into stable, unlinkable-without-the-key tokens.
///
/// `token = "hmac-sha256:" + hex(HMAC-SHA256(key, domain || 0x00 || value))`. The same value
/// under the same key always gives the same token, so the trail can be searched per patient by
/// whoever holds the key; without it a token reveals nothing. Its `Debug` never prints the key.
///
/// ```
/// use guardrail_audit::AuditKey;
/// let key = AuditKey::from_bytes(b"a key of at least sixteen bytes!").unwrap();
/// let t = key.token("subject", "patient-42");
/// assert!(t.starts_with("hmac-sha256:"));
/// assert!(!t.contains("patient-42"));
/// assert_eq!(t, key.token("subject", "patient-42"));
/// ```
#[derive(Clone)]
pub struct AuditKey {
    mac: HmacSha256,
}

/// Why bytes cannot be an audit key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an audit key needs at least 16 bytes, got {0}")]
pub struct KeyTooShort(pub usize);

impl AuditKey {
    /// The prefix of every token.
    pub const TOKEN_PREFIX: &'static str = "hmac-sha256:";

    /// A key from secret bytes (at least 16).
    pub fn from_bytes(bytes: &[u8]) -> Result<AuditKey, KeyTooShort> {
        if bytes.len() < 16 {
            return Err(KeyTooShort(bytes.len()));
        }
        let mac = HmacSha256::new_from_slice(bytes).map_err(|_| KeyTooShort(bytes.len()))?;
        Ok(AuditKey { mac })
    }

    /// The token of `value` in `domain` (e.g. `"subject"`): domains keep a patient id and an
    /// MRN with the same digits from producing the same token.
    pub fn token(&self, domain: &str, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut s = String::with_capacity(Self::TOKEN_PREFIX.len() + 64);
        s.push_str(Self::TOKEN_PREFIX);
        s.push_str(&hex::encode(out));
        s
    }

    /// The token of any displayable value (numeric ids, dates): formatted, then tokenized, so
    /// non-string PHI is keyed-hashed exactly like strings.
    pub fn token_display(&self, domain: &str, value: &dyn fmt::Display) -> String {
        self.token(domain, &value.to_string())
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey([REDACTED])")
    }
}
