//! Keyed tokens for identifiers and other PHI placed in events.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// `hmac-sha256:` + 64 hex digits.
const TOKEN_LEN: usize = 12 + 64;

/// A token on the stack (ASCII by construction).
struct TokenText([u8; TOKEN_LEN]);

impl TokenText {
    fn as_str(&self) -> &str {
        // Only ASCII bytes are ever written into the buffer.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    fn to_owned(&self) -> String {
        self.as_str().to_owned()
    }
}

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
    /// [`AuditKey::fingerprint`], computed once.
    fingerprint: std::sync::Arc<str>,
}

/// Why bytes cannot be an audit key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an audit key needs at least 16 bytes, got {0}")]
pub struct KeyTooShort(pub usize);

impl AuditKey {
    /// The prefix of every token.
    pub const TOKEN_PREFIX: &'static str = "hmac-sha256:";
    /// The domain patient (subject) ids are tokenized in, by the runtime and by every tool
    /// that searches the trail per patient.
    pub const SUBJECT_DOMAIN: &'static str = "subject";
    /// What the fingerprint MACs. It holds no `0x00` byte, and every token's input does
    /// (`domain || 0x00 || value`), so a fingerprint is never equal to a token.
    const FINGERPRINT_INPUT: &'static [u8] = b"guardrail-audit key fingerprint v1";

    /// A key from secret bytes (at least 16).
    pub fn from_bytes(bytes: &[u8]) -> Result<AuditKey, KeyTooShort> {
        if bytes.len() < 16 {
            return Err(KeyTooShort(bytes.len()));
        }
        let mac = HmacSha256::new_from_slice(bytes).map_err(|_| KeyTooShort(bytes.len()))?;
        let mut fp = mac.clone();
        fp.update(Self::FINGERPRINT_INPUT);
        let digest = fp.finalize().into_bytes();
        let fingerprint = hex::encode(&digest[..8]);
        Ok(AuditKey {
            mac,
            fingerprint: std::sync::Arc::from(fingerprint),
        })
    }

    /// A short, non-reversible identifier of this key: 16 hex characters, the first 8 bytes
    /// of `HMAC-SHA256(key, "guardrail-audit key fingerprint v1")`.
    ///
    /// Events that carry keyed tokens record it (`key_fingerprint`), so a tool given a key
    /// can tell "no event about this patient" from "this is not the key that made the
    /// trail". It reveals nothing about the key, and cannot be used to test guessed
    /// patient ids (that needs the key itself).
    ///
    /// ```
    /// use guardrail_audit::AuditKey;
    /// let a = AuditKey::from_bytes(b"a key of at least sixteen bytes!").unwrap();
    /// let b = AuditKey::from_bytes(b"another key, also long enough").unwrap();
    /// assert_eq!(a.fingerprint().len(), 16);
    /// assert_eq!(a.fingerprint(), a.clone().fingerprint());
    /// assert_ne!(a.fingerprint(), b.fingerprint());
    /// ```
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// [`AuditKey::fingerprint`] as shared text (events clone it instead of allocating).
    pub fn fingerprint_text(&self) -> std::sync::Arc<str> {
        self.fingerprint.clone()
    }

    /// The token of `value` in `domain` (e.g. `"subject"`): domains keep a patient id and an
    /// MRN with the same digits from producing the same token.
    pub fn token(&self, domain: &str, value: &str) -> String {
        let mut mac = self.mac_for(domain);
        mac.update(value.as_bytes());
        Self::encode(mac).to_owned()
    }

    /// The token of any displayable value (numeric ids, dates): its formatted text is
    /// tokenized, so non-string PHI is keyed-hashed exactly like strings (the same value
    /// gives the same token whether passed as text or as a number).
    pub fn token_display(&self, domain: &str, value: &dyn fmt::Display) -> String {
        self.token_display_arc(domain, value).to_string()
    }

    /// [`AuditKey::token_display`] as shared text, built without an intermediate string
    /// (the formatted value streams into the MAC).
    pub fn token_display_arc(&self, domain: &str, value: &dyn fmt::Display) -> std::sync::Arc<str> {
        struct Feed<'m>(&'m mut HmacSha256);
        impl fmt::Write for Feed<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0.update(s.as_bytes());
                Ok(())
            }
        }
        let mut mac = self.mac_for(domain);
        // Writing into a MAC cannot fail; a Display impl that reports an error still
        // produces a token of what it wrote.
        let _ = fmt::write(&mut Feed(&mut mac), format_args!("{value}"));
        std::sync::Arc::from(Self::encode(mac).as_str())
    }

    fn mac_for(&self, domain: &str) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac
    }

    fn encode(mac: HmacSha256) -> TokenText {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let out = mac.finalize().into_bytes();
        let mut buf = [0u8; TOKEN_LEN];
        buf[..Self::TOKEN_PREFIX.len()].copy_from_slice(Self::TOKEN_PREFIX.as_bytes());
        for (i, b) in out.iter().enumerate() {
            let at = Self::TOKEN_PREFIX.len() + 2 * i;
            buf[at] = HEX[usize::from(b >> 4)];
            buf[at + 1] = HEX[usize::from(b & 0x0f)];
        }
        TokenText(buf)
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_a_fixed_hmac_and_never_a_token() {
        let key = AuditKey::from_bytes(b"0123456789abcdef").unwrap();
        // Known answer: HMAC-SHA256("0123456789abcdef", "guardrail-audit key fingerprint v1"),
        // first 8 bytes (cross-checked with Python's hmac module).
        assert_eq!(key.fingerprint(), FINGERPRINT_KAT);
        let other = AuditKey::from_bytes(b"0123456789abcdeg").unwrap();
        assert_ne!(other.fingerprint(), key.fingerprint());
        assert!(!key.token("subject", "x").contains(key.fingerprint()));
    }

    const FINGERPRINT_KAT: &str = "6ca97ac1e41c9692";
}
