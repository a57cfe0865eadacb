//! The storage layer the file sink writes through.
//!
//! [`Storage`] is the handful of file-system operations the durable sink needs (append, fsync,
//! truncate, atomic rename, directory sync, read). [`StdStorage`] implements it with
//! `std::fs`. With the `sim` feature, [`sim`] adds `SimStorage`, a crash- and fault-simulating
//! in-memory double of it for tests.
//!
//! These items live only here (`guardrail_audit::io::…`); they are not re-exported at the crate
//! root.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// A file opened for appending.
pub trait StorageFile: Send + fmt::Debug {
    /// Appends all of `buf` at the end of the file (not durable until [`StorageFile::sync`]).
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything appended (and the file length) durable: `fdatasync`.
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes (not durable until [`StorageFile::sync`]).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// The current length in bytes.
    fn len(&mut self) -> io::Result<u64>;
    /// True when the file holds no bytes.
    fn is_empty(&mut self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The file-system operations the durable sink and the trail verifier use.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Opens `path` for appending, creating it empty if missing. A newly created file's
    /// directory entry is durable only after [`Storage::sync_dir`] of its directory.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Creates `path` empty (truncating an existing file) and opens it for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens `path` for sequential reading.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>>;
    /// True if `path` exists and is a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// True if `path` exists (file or directory).
    fn exists(&self, path: &Path) -> bool;
    /// Atomically replaces `to` by `from` (durable after [`Storage::sync_dir`]).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Reads the whole file.
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_read(path)?.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// The real file system (`std::fs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StdStorage;

#[derive(Debug)]
struct StdFile {
    file: File,
}

impl StorageFile for StdFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        // fdatasync also persists the size change of an append, which is all an append-only
        // file needs; the inode timestamps are not part of the trail.
        self.file.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn len(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

impl Storage for StdStorage {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(Box::new(StdFile { file }))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile { file }))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(path)?))
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // On Unix a directory opened read-only can be fsynced; that persists its entries.
        #[cfg(unix)]
        {
            File::open(dir)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            Ok(())
        }
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
}

#[cfg(any(test, feature = "sim"))]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
