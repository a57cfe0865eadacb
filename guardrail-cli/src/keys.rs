//! Loading keys named on the command line: a path to a key file, or `env:VAR`.
//!
//! * The audit key (`guardrail audit disclosures --key`): the secret the service passes to
//!   `AuditKey::from_bytes`. A key file (or variable) holding only hex digits (an even
//!   number of them, surrounding whitespace and a final newline ignored) is decoded from hex:
//!   this is the recommended form (`openssl rand -hex 32 > audit.key`). Anything else is taken
//!   as the raw key bytes, exactly as stored (no trimming), so a binary key file works too.
//!   At least 16 bytes.
//! * The checkpoint key (`guardrail audit verify --key`): text naming the scheme,
//!   `ed25519:<64 hex digits of the public key>` or `hmac-sha256:<hex of the secret key>`.

use std::path::Path;

use guardrail_audit::AuditKey;
use guardrail_audit::CheckpointVerifier;

/// Reads the bytes `spec` names: `env:VAR` or a file path. Errors never contain key bytes.
fn read_source(spec: &str, what: &str) -> Result<Vec<u8>, String> {
    if let Some(var) = spec.strip_prefix("env:") {
        if var.is_empty() {
            return Err(format!("{what} `{spec}` names no environment variable"));
        }
        return match std::env::var_os(var) {
            Some(v) => Ok(v.into_encoded_bytes()),
            None => Err(format!("{what}: environment variable `{var}` is not set")),
        };
    }
    std::fs::read(Path::new(spec)).map_err(|e| format!("cannot read {what} file `{spec}`: {e}"))
}

/// Decodes key material: hex when the (trimmed) content is only hex digits, else raw bytes.
pub(crate) fn decode_key_material(bytes: &[u8]) -> Vec<u8> {
    let trimmed = bytes.trim_ascii();
    if !trimmed.is_empty() && trimmed.len() % 2 == 0 && trimmed.iter().all(u8::is_ascii_hexdigit) {
        if let Ok(decoded) = hex::decode(trimmed) {
            return decoded;
        }
    }
    bytes.to_vec()
}

/// The audit key `spec` names.
pub(crate) fn audit_key(spec: &str) -> Result<AuditKey, String> {
    let bytes = read_source(spec, "audit key")?;
    AuditKey::from_bytes(&decode_key_material(&bytes))
        .map_err(|e| format!("audit key `{spec}`: {e} (give the key as hex, or as raw bytes)"))
}

/// The checkpoint verification key `spec` names.
pub(crate) fn checkpoint_verifier(spec: &str) -> Result<CheckpointVerifier, String> {
    let bytes = read_source(spec, "checkpoint key")?;
    let text = String::from_utf8(bytes).map_err(|_| {
        format!(
            "checkpoint key `{spec}` is not text: expected `ed25519:<hex>` or `hmac-sha256:<hex>`"
        )
    })?;
    CheckpointVerifier::from_key_text(&text).map_err(|e| format!("checkpoint key `{spec}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_decoded_and_anything_else_is_raw() {
        let hex = b"00112233445566778899aabbccddeeff\n";
        assert_eq!(
            decode_key_material(hex),
            (0u8..16).map(|i| i * 0x11).collect::<Vec<u8>>()
        );
        // Odd length or a non-hex byte: raw bytes, untouched.
        assert_eq!(decode_key_material(b"abc"), b"abc".to_vec());
        assert_eq!(
            decode_key_material(b"not hex at all, sixteen+\n"),
            b"not hex at all, sixteen+\n".to_vec()
        );
    }

    #[test]
    fn a_short_or_missing_key_is_an_error_without_key_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.key");
        std::fs::write(&short, "00112233").unwrap();
        let err = audit_key(short.to_str().unwrap()).unwrap_err();
        assert!(err.contains("at least 16 bytes"), "{err}");
        assert!(!err.contains("00112233"), "{err}");
        let err = audit_key("env:GUARDRAIL_CLI_TEST_UNSET_VARIABLE").unwrap_err();
        assert!(err.contains("is not set"), "{err}");
        let err = audit_key("/nonexistent/guardrail.key").unwrap_err();
        assert!(err.contains("cannot read audit key file"), "{err}");
    }
}
