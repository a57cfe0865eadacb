//! The server's configuration: where its data lives, which database, and the bearer tokens
//! it accepts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use guardrail_core::Principal;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Holds the audit trail (`audit/`), the SQLite database (`clinic.sqlite`) and, unless
    /// [`ServerConfig::tokens`] names another file, the token file (`tokens.toml`, written
    /// with the demo tokens on first run).
    pub data_dir: PathBuf,
    /// Which database.
    pub database: DatabaseConfig,
    /// The token file; `None` means `DATA/tokens.toml`.
    pub tokens: Option<PathBuf>,
    /// The pool's size.
    pub max_connections: u32,
    /// A request still running after this long is cancelled (its future dropped) and
    /// answered 503 `timeout`.
    pub request_timeout: Duration,
    /// Replica mode under this name (PostgreSQL only; see [`crate::replica`]).
    pub replica: Option<String>,
}

/// Which database the clinic's data and transaction-bound outcomes live in.
#[derive(Clone, Debug)]
pub enum DatabaseConfig {
    /// SQLite in `DATA/clinic.sqlite`, created on first run.
    Sqlite,
    /// PostgreSQL at `url`; with `schema`, every table lives in that schema (created if
    /// missing; a plain identifier), so several servers can share one database.
    Postgres {
        /// `postgres://user@host:port/db`.
        url: String,
        /// The schema to use instead of the URL's default search path.
        schema: Option<String>,
    },
}

impl ServerConfig {
    /// SQLite in `data_dir`, the demo defaults otherwise.
    pub fn sqlite(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            database: DatabaseConfig::Sqlite,
            tokens: None,
            max_connections: 4,
            request_timeout: Duration::from_secs(30),
            replica: None,
        }
    }

    /// PostgreSQL at `url` (trail and token file still in `data_dir`).
    pub fn postgres(data_dir: impl Into<PathBuf>, url: impl Into<String>) -> ServerConfig {
        ServerConfig {
            database: DatabaseConfig::Postgres {
                url: url.into(),
                schema: None,
            },
            max_connections: 8,
            ..ServerConfig::sqlite(data_dir)
        }
    }

    /// The token file this configuration reads.
    pub fn tokens_path(&self) -> PathBuf {
        self.tokens
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tokens.toml"))
    }
}

/// The demo's token file, written to `DATA/tokens.toml` on first run. Demo only: a real
/// service verifies tokens its identity provider issued.
pub const DEMO_TOKENS: &str = r#"# Bearer tokens of the clinic server: token -> principal.
# Demo only: anyone who reads this file can act as these people.

[[token]]
token = "demo-dr-grey"
principal = "dr-grey"
roles = ["provider"]
jurisdiction = "US-CA"

[[token]]
token = "demo-dr-hale"
principal = "dr-hale"
roles = ["provider"]
jurisdiction = "US-CA"

[[token]]
token = "demo-dr-ruiz"
principal = "dr-ruiz"
roles = ["provider"]
jurisdiction = "US-TX"

[[token]]
token = "demo-clerk-ito"
principal = "clerk-ito"
roles = ["billing"]
jurisdiction = "US-CA"

[[token]]
token = "demo-user-alice"
principal = "user-alice"
roles = ["patient"]
patient = "p-100"

[[token]]
token = "demo-res-kim"
principal = "res-kim"
roles = ["researcher"]

[[token]]
token = "demo-adm-ray"
principal = "adm-ray"
roles = ["admin"]

[[token]]
token = "demo-po-lee"
principal = "po-lee"
roles = ["privacy_officer"]
"#;

/// One entry of the token file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    token: String,
    principal: String,
    #[serde(default)]
    roles: Vec<String>,
    jurisdiction: Option<String>,
    patient: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

/// Why a token file was refused. Messages name the file and the entry, never a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read token file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("token file `{path}` is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line and column).
        message: String,
    },
    /// An entry is unusable.
    #[error("token file `{path}`, entry {index}: {problem}")]
    Entry {
        /// The file.
        path: PathBuf,
        /// 1-based entry number.
        index: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// No entries.
    #[error("token file `{0}` defines no tokens")]
    Empty(PathBuf),
}

/// Bearer tokens and the principals they authenticate. Tokens are kept only as SHA-256
/// digests, so a lookup's timing does not depend on how much of a guess matched.
#[derive(Clone, Debug, Default)]
pub struct TokenTable {
    by_digest: HashMap<[u8; 32], Principal>,
}

impl TokenTable {
    /// Parses a token file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<TokenTable, TokenError> {
        let file: TokenFile = toml::from_str(text).map_err(|e| TokenError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
        if file.token.is_empty() {
            return Err(TokenError::Empty(path.to_owned()));
        }
        let mut by_digest = HashMap::new();
        for (i, entry) in file.token.into_iter().enumerate() {
            let bad = |problem| TokenError::Entry {
                path: path.to_owned(),
                index: i + 1,
                problem,
            };
            if entry.token.len() < 8 || entry.token.chars().any(char::is_whitespace) {
                return Err(bad("`token` must be at least 8 characters without spaces"));
            }
            if !guardrail_axum::is_safe_id(&entry.principal) {
                return Err(bad(
                    "`principal` must be 1 to 64 characters of letters, digits, `-_.:`",
                ));
            }
            if entry.roles.is_empty() {
                return Err(bad("`roles` must name at least one role"));
            }
            let mut principal = Principal::new(entry.principal.as_str());
            for role in &entry.roles {
                principal = principal.role(role.as_str());
            }
            if let Some(j) = &entry.jurisdiction {
                principal = principal.jurisdiction(j.as_str());
            }
            if let Some(p) = &entry.patient {
                principal = principal.patient(p.as_str());
            }
            if by_digest.insert(digest(&entry.token), principal).is_some() {
                return Err(bad("`token` is used by an earlier entry too"));
            }
        }
        Ok(TokenTable { by_digest })
    }

    /// Reads the token file at `path`.
    pub fn load(path: &Path) -> Result<TokenTable, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            path: path.to_owned(),
            source,
        })?;
        TokenTable::parse(&text, path)
    }

    /// The principal `token` authenticates, if any.
    pub fn principal(&self, token: &str) -> Option<&Principal> {
        self.by_digest.get(&digest(token))
    }

    /// How many tokens the table holds.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// True if the table holds no token.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_tokens_parse_and_authenticate() {
        let t = TokenTable::parse(DEMO_TOKENS, Path::new("demo")).unwrap();
        assert_eq!(t.len(), 8);
        let alice = t.principal("demo-user-alice").unwrap();
        assert_eq!(alice.id(), "user-alice");
        assert!(t.principal("demo-user-alic").is_none());
    }

    #[test]
    fn bad_entries_are_named_without_the_token() {
        let text = "[[token]]\ntoken = \"short\"\nprincipal = \"x\"\nroles = [\"a\"]\n";
        let e = TokenTable::parse(text, Path::new("t.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "token file `t.toml`, entry 1: `token` must be at least 8 characters without spaces"
        );
        let dup = "[[token]]\ntoken = \"abcdefgh\"\nprincipal = \"x\"\nroles = [\"a\"]\n\
                   [[token]]\ntoken = \"abcdefgh\"\nprincipal = \"y\"\nroles = [\"a\"]\n";
        let e = TokenTable::parse(dup, Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("entry 2"), "{e}");
        assert!(!e.to_string().contains("abcdefgh"), "{e}");
        let unknown = "[[token]]\ntoken = \"abcdefgh\"\nprincipal = \"x\"\nrole = [\"a\"]\n";
        assert!(matches!(
            TokenTable::parse(unknown, Path::new("t.toml")),
            Err(TokenError::Parse { .. })
        ));
    }
}
