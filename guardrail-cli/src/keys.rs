//! Loading keys named on the command line. Each flag says how its key is encoded; nothing is
//! guessed.
//!
//! * The audit key (`guardrail audit disclosures`), the secret the service passes to
//!   `AuditKey::from_bytes`, at least 16 bytes:
//!   * `--key-hex VALUE`: the key as hex digits. `VALUE` is `env:VAR` (a variable holding
//!     the hex), `file:PATH` (a file holding it, as `openssl rand -hex 32 > audit.key`
//!     writes), or the hex digits themselves (visible in process lists: avoid). Surrounding
//!     whitespace and a final newline are ignored; anything else that is not hex is an error.
//!   * `--key-file PATH`: a file holding the raw key bytes, taken exactly as stored.
//!   * `--key` (removed): it guessed hex or raw from the content; it is refused with a
//!     message naming the two flags above.
//! * The checkpoint key (`--checkpoint-key`): a file or `env:VAR` holding text that names
//!   its scheme, `ed25519:<64 hex digits of the public key>` or `hmac-sha256:<hex secret>`.
//!
//! Error messages never contain key bytes.

use std::path::Path;

use guardrail_audit::AuditKey;
use guardrail_audit::CheckpointVerifier;

/// The message for the removed `--key` of `disclosures`.
pub(crate) const KEY_REMOVED: &str = "`--key` is no longer accepted: it guessed whether the key \
     was hex or raw bytes. Say which: `--key-hex env:VAR`, `--key-hex file:PATH` (the key as \
     hex digits) or `--key-file PATH` (a file of the raw key bytes)";

/// The message for the removed `--key` of `verify`.
pub(crate) const CHECKPOINT_KEY_RENAMED: &str = "`--key` of `audit verify` is now \
     `--checkpoint-key` (as for the other commands): a file or `env:VAR` holding \
     `ed25519:<hex public key>` or `hmac-sha256:<hex secret>`";

/// An audit key and what is known about how it was given.
#[derive(Debug)]
pub(crate) struct LoadedKey {
    pub(crate) key: AuditKey,
    /// A hint for a key that does not match the trail (a likely encoding mistake).
    pub(crate) hint: Option<&'static str>,
}

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
    read_file(spec, what)
}

fn read_file(path: &str, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(Path::new(path)).map_err(|e| format!("cannot read {what} file `{path}`: {e}"))
}

fn looks_like_hex(bytes: &[u8]) -> bool {
    let t = bytes.trim_ascii();
    !t.is_empty() && t.len() % 2 == 0 && t.iter().all(u8::is_ascii_hexdigit)
}

/// Decodes hex key material (surrounding ASCII whitespace ignored). The error names the
/// position of the first bad character, never the character.
pub(crate) fn decode_hex(bytes: &[u8], what: &str) -> Result<Vec<u8>, String> {
    let t = bytes.trim_ascii();
    if t.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if let Some(at) = t.iter().position(|b| !b.is_ascii_hexdigit()) {
        return Err(format!(
            "{what} is not hex: character {} is not a hex digit (for a file of raw key bytes, \
             use `--key-file`)",
            at + 1
        ));
    }
    if t.len() % 2 != 0 {
        return Err(format!(
            "{what} is not hex: an odd number of hex digits ({})",
            t.len()
        ));
    }
    hex::decode(t).map_err(|_| format!("{what} is not hex"))
}

/// The audit key given as hex by `spec` (`env:VAR`, `file:PATH` or the digits).
pub(crate) fn audit_key_hex(spec: &str) -> Result<LoadedKey, String> {
    let (bytes, what) = if let Some(path) = spec.strip_prefix("file:") {
        (
            read_file(path, "audit key")?,
            format!("audit key file `{path}`"),
        )
    } else if spec.starts_with("env:") {
        (
            read_source(spec, "audit key")?,
            format!("audit key `{spec}`"),
        )
    } else {
        (
            spec.as_bytes().to_vec(),
            "the audit key given to `--key-hex`".to_owned(),
        )
    };
    let raw = decode_hex(&bytes, &what)?;
    let key = AuditKey::from_bytes(&raw).map_err(|e| format!("{what}: {e}"))?;
    Ok(LoadedKey { key, hint: None })
}

/// The audit key stored as raw bytes in the file at `path`.
pub(crate) fn audit_key_file(path: &str) -> Result<LoadedKey, String> {
    let bytes = read_file(path, "audit key")?;
    let key = AuditKey::from_bytes(&bytes).map_err(|e| {
        format!("audit key file `{path}`: {e} (`--key-file` takes the raw key bytes as stored)")
    })?;
    let hint = looks_like_hex(&bytes).then_some(
        "the key file holds only hex digits: if it stores the key as hex, give it as \
         `--key-hex file:PATH`",
    );
    Ok(LoadedKey { key, hint })
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

    const HEX: &str = "00112233445566778899aabbccddeeff";

    fn expected() -> AuditKey {
        AuditKey::from_bytes(&(0u8..16).map(|i| i * 0x11).collect::<Vec<u8>>()).unwrap()
    }

    #[test]
    fn hex_is_decoded_from_every_source_and_raw_files_are_taken_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let hex_file = dir.path().join("hex.key");
        std::fs::write(&hex_file, format!("{HEX}\n")).unwrap();
        let spec = format!("file:{}", hex_file.display());
        let want = expected().fingerprint().to_owned();
        assert_eq!(audit_key_hex(&spec).unwrap().key.fingerprint(), want);
        assert_eq!(audit_key_hex(HEX).unwrap().key.fingerprint(), want);
        // The same file as raw bytes is another (33-byte) key, with a hint.
        let raw = audit_key_file(hex_file.to_str().unwrap()).unwrap();
        assert_ne!(raw.key.fingerprint(), want);
        assert!(raw.hint.unwrap().contains("--key-hex file:"));
        let mut bytes = HEX.as_bytes().to_vec();
        bytes.extend_from_slice(b"\n");
        assert_eq!(
            raw.key.fingerprint(),
            AuditKey::from_bytes(&bytes).unwrap().fingerprint()
        );
        // A binary key file: no hint.
        let bin = dir.path().join("bin.key");
        std::fs::write(&bin, [0xffu8; 32]).unwrap();
        assert!(
            audit_key_file(bin.to_str().unwrap())
                .unwrap()
                .hint
                .is_none()
        );
    }

    #[test]
    fn bad_hex_is_an_error_naming_the_place_not_the_key() {
        let e = audit_key_hex("0011223344556677889g").unwrap_err();
        assert!(e.contains("character 20 is not a hex digit"), "{e}");
        assert!(!e.contains("0011"), "{e}");
        let e = audit_key_hex("001122334455667788990").unwrap_err();
        assert!(e.contains("odd number"), "{e}");
        let e = audit_key_hex("   ").unwrap_err();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn a_short_or_missing_key_is_an_error_without_key_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.key");
        std::fs::write(&short, "00112233").unwrap();
        let e = audit_key_hex(&format!("file:{}", short.display())).unwrap_err();
        assert!(e.contains("at least 16 bytes"), "{e}");
        assert!(!e.contains("00112233"), "{e}");
        let e = audit_key_file(short.to_str().unwrap()).unwrap_err();
        assert!(e.contains("at least 16 bytes"), "{e}");
        let e = audit_key_hex("env:GUARDRAIL_CLI_TEST_UNSET_VARIABLE").unwrap_err();
        assert!(e.contains("is not set"), "{e}");
        let e = audit_key_file("/nonexistent/guardrail.key").unwrap_err();
        assert!(e.contains("cannot read audit key file"), "{e}");
    }
}
