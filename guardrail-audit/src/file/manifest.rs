//! The manifest: which files make up a trail, in order, and where each one's chain starts.
//!
//! ```text
//! {"format":"guardrail-audit-manifest","version":1,"log":"<32 hex>"}
//! {"file":"audit-00000001.jsonl","first_seq":0,"prev":"<64 hex>"}
//! {"file":"audit-00000002.jsonl","first_seq":1742,"prev":"<64 hex>"}
//! ```
//!
//! It is rewritten whole, atomically (temporary file, fsync, rename, fsync of the directory),
//! before a new file is created, so a crash leaves either the old or the new list.

use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chain::Digest;
use crate::io::Storage;

/// File name of the manifest inside a trail directory.
pub const MANIFEST_FILE: &str = "manifest.jsonl";
/// File name of the default checkpoint file inside a trail directory.
pub const CHECKPOINT_FILE: &str = "checkpoints.jsonl";
const MANIFEST_TMP: &str = "manifest.jsonl.tmp";
const FORMAT: &str = "guardrail-audit-manifest";
/// The manifest format version this build writes and reads.
pub const MANIFEST_VERSION: u64 = 1;
/// The largest manifest a reader accepts: 16 MiB. One line per file of the trail is about
/// 130 bytes, so this is over 100,000 files (6 TiB of events at the default rotation size);
/// a bigger file is not a manifest guardrail wrote, and is refused before it is read whole.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// One file of a trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// File name, relative to the trail directory.
    pub file: String,
    /// Sequence number of the file's first event.
    pub first_seq: u64,
    /// Hash the file's first event links to (the previous file's last event, or genesis).
    pub prev: Digest,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u64,
    log: String,
}

/// A trail's manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The log's identifier; checkpoints name it, so a checkpoint of another log is caught.
    pub log: String,
    /// The files, oldest first.
    pub files: Vec<ManifestEntry>,
}

/// Why a manifest cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ManifestError {
    /// 1-based line of the problem.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The name of the `n`-th file of a trail (from 1).
pub(crate) fn file_name(n: u64) -> String {
    format!("audit-{n:08}.jsonl")
}

/// The number in a name made by [`file_name`].
pub(crate) fn file_number(name: &str) -> Option<u64> {
    name.strip_prefix("audit-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

impl Manifest {
    /// Parses manifest text.
    pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
        let text = std::str::from_utf8(text).map_err(|e| ManifestError {
            line: 1 + text[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            message: "not UTF-8 text".into(),
        })?;
        let Some(body) = text.strip_suffix('\n') else {
            return Err(ManifestError {
                line: text.lines().count().max(1),
                message: "the manifest does not end with a newline (incomplete)".into(),
            });
        };
        let mut lines = body.split('\n').enumerate();
        let first = lines.next().map_or("", |(_, l)| l);
        let header: Header = serde_json::from_str(first).map_err(|e| ManifestError {
            line: 1,
            message: format!("not a manifest header: {e}"),
        })?;
        if header.format != FORMAT {
            return Err(ManifestError {
                line: 1,
                message: format!("format is `{}`, expected `{FORMAT}`", header.format),
            });
        }
        if header.version != MANIFEST_VERSION {
            return Err(ManifestError {
                line: 1,
                message: format!(
                    "manifest version {} is not supported (this build reads version {MANIFEST_VERSION})",
                    header.version
                ),
            });
        }
        let mut files: Vec<ManifestEntry> = Vec::new();
        for (i, l) in lines {
            let line = i + 1;
            let entry: ManifestEntry = serde_json::from_str(l).map_err(|e| ManifestError {
                line,
                message: format!("not a file entry: {e}"),
            })?;
            if entry.file.is_empty()
                || entry.file.contains(['/', '\\'])
                || entry.file.starts_with('.')
            {
                return Err(ManifestError {
                    line,
                    message: format!(
                        "file name `{}` is not a plain name inside the trail directory",
                        entry.file
                    ),
                });
            }
            if let Some(before) = files.last() {
                if entry.first_seq < before.first_seq {
                    return Err(ManifestError {
                        line,
                        message: format!(
                            "`first_seq` {} is smaller than the previous file's {}",
                            entry.first_seq, before.first_seq
                        ),
                    });
                }
            }
            files.push(entry);
        }
        if files.is_empty() {
            return Err(ManifestError {
                line: 1,
                message: "the manifest lists no files".into(),
            });
        }
        Ok(Manifest {
            log: header.log,
            files,
        })
    }

    /// The manifest as text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let header = Header {
            format: FORMAT.into(),
            version: MANIFEST_VERSION,
            log: self.log.clone(),
        };
        // Serializing these plain structs cannot fail.
        out.push_str(&serde_json::to_string(&header).unwrap_or_default());
        out.push('\n');
        for f in &self.files {
            out.push_str(&serde_json::to_string(f).unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// Reads `dir/manifest.jsonl`.
    pub(crate) fn read(
        storage: &dyn Storage,
        dir: &Path,
    ) -> io::Result<Result<Manifest, ManifestError>> {
        Manifest::read_file(storage, &dir.join(MANIFEST_FILE))
    }

    /// Reads and parses the manifest at `path`, holding at most [`MAX_MANIFEST_BYTES`] + 1
    /// bytes in memory: a larger file is an error (naming the limit), never read whole.
    pub(crate) fn read_file(
        storage: &dyn Storage,
        path: &Path,
    ) -> io::Result<Result<Manifest, ManifestError>> {
        let mut bytes = Vec::new();
        storage
            .open_read(path)?
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Ok(Err(ManifestError {
                line: 1 + bytes.iter().filter(|&&b| b == b'\n').count(),
                message: format!(
                    "the manifest is larger than {} MiB, the most a trail's manifest holds \
                     (one short line per file): not a manifest guardrail wrote",
                    MAX_MANIFEST_BYTES >> 20
                ),
            }));
        }
        Ok(Manifest::parse(&bytes))
    }

    /// Replaces `dir/manifest.jsonl` atomically and durably.
    pub(crate) fn write(&self, storage: &dyn Storage, dir: &Path) -> io::Result<()> {
        let tmp = dir.join(MANIFEST_TMP);
        let mut f = storage.create(&tmp)?;
        f.append(self.to_text().as_bytes())?;
        f.sync()?;
        drop(f);
        storage.rename(&tmp, &dir.join(MANIFEST_FILE))?;
        storage.sync_dir(dir)
    }

    /// Paths of the files, in order.
    pub fn paths(&self, dir: &Path) -> Vec<PathBuf> {
        self.files.iter().map(|f| dir.join(&f.file)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            log: "00ff".into(),
            files: vec![
                ManifestEntry {
                    file: file_name(1),
                    first_seq: 0,
                    prev: crate::GENESIS,
                },
                ManifestEntry {
                    file: file_name(2),
                    first_seq: 10,
                    prev: Digest([7; 32]),
                },
            ],
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(Manifest::parse(m.to_text().as_bytes()).unwrap(), m);
        assert_eq!(file_number(&file_name(42)), Some(42));
    }

    #[test]
    fn errors_name_the_line() {
        let mut text = sample().to_text();
        text = text.replace("\"first_seq\":10", "\"first_seq\":\"ten\"");
        let e = Manifest::parse(text.as_bytes()).unwrap_err();
        assert_eq!(e.line, 3);
        let text = sample()
            .to_text()
            .replace(&file_name(2), "../../etc/passwd");
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap_err().line, 3);
        let text = sample().to_text();
        let e = Manifest::parse(&text.as_bytes()[..text.len() - 1]).unwrap_err();
        assert!(e.message.contains("newline"), "{e}");
        let text = sample().to_text().replace("\"version\":1", "\"version\":9");
        assert!(
            Manifest::parse(text.as_bytes())
                .unwrap_err()
                .message
                .contains("version 9")
        );
    }

    #[test]
    fn a_manifest_over_the_limit_is_refused_without_reading_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        // A sparse file of 512 MiB: its size costs no disk, and reading it whole would
        // cost 512 MiB of memory.
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(512 << 20).unwrap();
        let e = Manifest::read_file(&crate::io::StdStorage, &path)
            .unwrap()
            .unwrap_err();
        assert!(e.message.contains("larger than 16 MiB"), "{e}");
        // At the limit exactly: read and parsed (and refused for what it holds, not its size).
        f.set_len(MAX_MANIFEST_BYTES).unwrap();
        let e = Manifest::read_file(&crate::io::StdStorage, &path)
            .unwrap()
            .unwrap_err();
        assert!(!e.message.contains("larger than"), "{e}");
        // A real manifest still reads.
        std::fs::write(&path, sample().to_text()).unwrap();
        assert_eq!(
            Manifest::read_file(&crate::io::StdStorage, &path)
                .unwrap()
                .unwrap(),
            sample()
        );
    }
}
