//! A crash-simulating double of [`Storage`] (feature `sim`).
//!
//! [`SimStorage`] is an in-memory double in the spirit of SQLite's test VFS: it
//! remembers which writes were never made durable by an fsync, and [`SimStorage::crash`]
//! produces the disk as a power cut could leave it (each unsynced write kept, dropped, torn or
//! replaced by garbage, each unsynced directory change kept or dropped), driven by a seeded
//! xorshift generator so every failure is reproducible. It also injects `EIO`/`ENOSPC` at the
//! k-th write or the k-th fsync, and models "fsyncgate": after a failed fsync the unsynced data
//! is in doubt forever, and a later fsync that reports success does not make it durable.
//!
//! The canonical paths are `guardrail_audit::io::sim::…`.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Storage, StorageFile};

/// A small, fast, seeded pseudo-random generator (xorshift64*), for reproducible faults.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (any value, including 0).
    pub fn new(seed: u64) -> XorShift {
        // splitmix64 of the seed, so nearby seeds give unrelated streams and 0 is allowed.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

/// Which error an injected fault raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `EIO`: the device reported an I/O error.
    Eio,
    /// `ENOSPC`: no space left on the device.
    Enospc,
}

impl FaultKind {
    fn error(self) -> io::Error {
        match self {
            FaultKind::Eio => io::Error::other("injected EIO: input/output error"),
            FaultKind::Enospc => io::Error::new(
                io::ErrorKind::StorageFull,
                "injected ENOSPC: no space left on device",
            ),
        }
    }
}

/// Where [`SimStorage`] injects a fault. Indices count from 0 over the storage's whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Faults {
    /// The write (append) call with this index fails (after writing half of its bytes, as a
    /// short write before `ENOSPC` would).
    pub write_at: Option<u64>,
    /// The fsync (file or directory) with this index fails.
    pub sync_at: Option<u64>,
    /// The error both raise.
    pub kind: Option<FaultKind>,
    /// Once one fault fired, keep failing every later write and fsync (a dead disk).
    pub sticky: bool,
}

/// Counters of a [`SimStorage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimStats {
    /// Write (append) calls so far.
    pub writes: u64,
    /// Fsync calls (files and directories) so far.
    pub syncs: u64,
    /// Mutating operations so far (writes, syncs, truncations, creations, renames).
    pub ops: u64,
    /// Faults injected so far.
    pub faults: u64,
}

#[derive(Debug, Clone)]
enum FileOp {
    Write { offset: u64, data: Vec<u8> },
    Truncate { len: u64 },
}

#[derive(Debug, Clone, Default)]
struct Inode {
    /// The bytes as of the last successful fsync.
    durable: Vec<u8>,
    /// What a reader sees now.
    current: Vec<u8>,
    /// Changes since `durable`, in order; at a crash each one has a random fate.
    pending: Vec<FileOp>,
    /// An fsync failed: nothing written since the last good fsync is ever durable for sure.
    sync_failed: bool,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link { path: PathBuf, inode: usize },
    Rename { from: PathBuf, to: PathBuf },
}

impl DirOp {
    fn touches(&self, dir: &Path) -> bool {
        match self {
            DirOp::Link { path, .. } => path.parent() == Some(dir),
            DirOp::Rename { from, to } => from.parent() == Some(dir) || to.parent() == Some(dir),
        }
    }
}

#[derive(Debug, Default)]
struct SimState {
    inodes: Vec<Inode>,
    /// Directory entries as a reader sees them now.
    names: BTreeMap<PathBuf, usize>,
    /// Directory entries as of the last directory fsync.
    durable_names: BTreeMap<PathBuf, usize>,
    /// Directory changes not yet made durable.
    dir_ops: Vec<DirOp>,
    dirs: Vec<PathBuf>,
    faults: Faults,
    fault_fired: bool,
    /// After this many mutating operations the simulated process is dead: every later
    /// operation fails and nothing changes.
    crash_after_ops: Option<u64>,
    /// Appends to files of this name wait this long before they happen.
    slow_writes: Option<(std::ffi::OsString, std::time::Duration)>,
    stats: SimStats,
}

/// An in-memory [`Storage`] that simulates power cuts and injects faults.
///
/// Clones share the same disk. See the module documentation.
///
/// ```
/// use std::path::Path;
/// use guardrail_audit::io::Storage;
/// use guardrail_audit::io::sim::SimStorage;
/// let disk = SimStorage::new();
/// disk.create_dir_all(Path::new("/d")).unwrap();
/// let mut f = disk.open_append(Path::new("/d/a")).unwrap();
/// f.append(b"synced\n").unwrap();
/// f.sync().unwrap();
/// disk.sync_dir(Path::new("/d")).unwrap();
/// f.append(b"unsynced\n").unwrap();
/// // After a crash the synced bytes are always there; the rest may or may not be.
/// let after = disk.crash(7);
/// assert!(after.read_all(Path::new("/d/a")).unwrap().starts_with(b"synced\n"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<SimState>>,
}

impl SimStorage {
    /// An empty disk.
    pub fn new() -> SimStorage {
        SimStorage::default()
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the faults to inject from now on (indices are absolute, see [`SimStats`]).
    pub fn set_faults(&self, faults: Faults) {
        let mut s = self.lock();
        s.faults = faults;
        s.fault_fired = false;
    }

    /// Stops injecting faults (the fault "clears").
    pub fn clear_faults(&self) {
        self.set_faults(Faults::default());
    }

    /// The simulated process dies after `ops` more mutating operations: from then on every
    /// operation fails with an error and changes nothing.
    pub fn crash_after(&self, ops: u64) {
        let mut s = self.lock();
        s.crash_after_ops = Some(s.stats.ops + ops);
    }

    /// From now on every append to a file named `name` (in any directory) waits `delay`
    /// before it happens, as a slow device would: for tests of what must not be answered
    /// before such a write (a flush before its checkpoint). Other operations go on meanwhile.
    pub fn delay_writes_to(&self, name: &str, delay: std::time::Duration) {
        self.lock().slow_writes = Some((name.into(), delay));
    }

    /// Operation counters.
    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// The disk as a power cut at this instant could leave it, as a new, independent
    /// storage with no pending changes and no faults. `seed` decides the fate of every
    /// unsynced change: kept, dropped, torn (a prefix kept) or replaced by garbage.
    pub fn crash(&self, seed: u64) -> SimStorage {
        let s = self.lock();
        let mut rng = XorShift::new(seed);
        // Directory entries: the durable ones, then each unsynced change kept or dropped.
        let mut names = s.durable_names.clone();
        for op in &s.dir_ops {
            if rng.chance(1, 2) {
                continue;
            }
            match op {
                DirOp::Link { path, inode } => {
                    names.insert(path.clone(), *inode);
                }
                DirOp::Rename { from, to } => {
                    if let Some(inode) = names.remove(from) {
                        names.insert(to.clone(), inode);
                    }
                }
            }
        }
        let mut inodes = Vec::with_capacity(s.inodes.len());
        for inode in &s.inodes {
            let mut data = inode.durable.clone();
            for op in &inode.pending {
                match op {
                    FileOp::Write {
                        offset,
                        data: bytes,
                    } => {
                        let fate = rng.below(4);
                        let offset = usize::try_from(*offset).unwrap_or(usize::MAX);
                        let kept: Vec<u8> = match fate {
                            0 => continue, // dropped
                            1 => bytes.clone(),
                            2 => {
                                let n = rng.below(bytes.len() as u64 + 1) as usize;
                                bytes[..n].to_vec() // torn: a prefix reached the disk
                            }
                            _ => bytes
                                .iter()
                                .map(|_| (rng.next_u64() & 0xff) as u8)
                                .collect(),
                        };
                        if data.len() < offset {
                            data.resize(offset, 0); // a hole reads as zeros
                        }
                        let end = offset + kept.len();
                        if data.len() < end {
                            data.resize(end, 0);
                        }
                        data[offset..end].copy_from_slice(&kept);
                    }
                    FileOp::Truncate { len } => {
                        if rng.chance(1, 2) {
                            data.truncate(usize::try_from(*len).unwrap_or(usize::MAX));
                        }
                    }
                }
            }
            inodes.push(Inode {
                durable: data.clone(),
                current: data,
                pending: Vec::new(),
                sync_failed: false,
            });
        }
        let state = SimState {
            inodes,
            durable_names: names.clone(),
            names,
            dir_ops: Vec::new(),
            dirs: s.dirs.clone(),
            faults: Faults::default(),
            fault_fired: false,
            crash_after_ops: None,
            slow_writes: None,
            stats: SimStats::default(),
        };
        SimStorage {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Overwrites a file's content in place, durably (tamper tests edit the "disk").
    pub fn replace_durably(&self, path: &Path, bytes: Vec<u8>) -> io::Result<()> {
        let mut s = self.lock();
        let inode = *s.names.get(path).ok_or_else(|| not_found(path))?;
        let node = &mut s.inodes[inode];
        node.durable = bytes.clone();
        node.current = bytes;
        node.pending.clear();
        Ok(())
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no such file `{}` (simulated)", path.display()),
    )
}

fn crashed_error() -> io::Error {
    io::Error::other("the simulated process has crashed")
}

impl SimState {
    /// Counts a mutating operation; fails once the simulated process is dead.
    fn mutate(&mut self) -> io::Result<()> {
        if let Some(limit) = self.crash_after_ops {
            if self.stats.ops >= limit {
                return Err(crashed_error());
            }
        }
        self.stats.ops += 1;
        Ok(())
    }

    fn fault_now(&mut self, index: u64, at: Option<u64>) -> Option<io::Error> {
        let kind = self.faults.kind?;
        let fire = at == Some(index) || (self.faults.sticky && self.fault_fired);
        if fire {
            self.fault_fired = true;
            self.stats.faults += 1;
            Some(kind.error())
        } else {
            None
        }
    }

    fn link(&mut self, path: &Path, inode: usize) {
        self.names.insert(path.to_owned(), inode);
        self.dir_ops.push(DirOp::Link {
            path: path.to_owned(),
            inode,
        });
    }

    fn parent_exists(&self, path: &Path) -> bool {
        match path.parent() {
            None => true,
            Some(p) if p.as_os_str().is_empty() => true,
            Some(p) => self.dirs.iter().any(|d| d == p),
        }
    }
}

#[derive(Debug)]
struct SimFile {
    disk: SimStorage,
    inode: usize,
}

impl StorageFile for SimFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let delay = {
            let s = self.disk.lock();
            s.slow_writes.as_ref().and_then(|(name, delay)| {
                s.names
                    .iter()
                    .any(|(path, &inode)| {
                        inode == self.inode && path.file_name() == Some(name.as_os_str())
                    })
                    .then_some(*delay)
            })
        };
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        let mut s = self.disk.lock();
        s.mutate()?;
        let index = s.stats.writes;
        s.stats.writes += 1;
        let at = s.faults.write_at;
        let fault = s.fault_now(index, at);
        // A failing write still puts a prefix on the disk, as a short write before ENOSPC does.
        let data = match &fault {
            Some(_) => &buf[..buf.len() / 2],
            None => buf,
        };
        let node = &mut s.inodes[self.inode];
        let offset = node.current.len() as u64;
        node.current.extend_from_slice(data);
        if !data.is_empty() {
            node.pending.push(FileOp::Write {
                offset,
                data: data.to_vec(),
            });
        }
        match fault {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut s = self.disk.lock();
        s.mutate()?;
        let index = s.stats.syncs;
        s.stats.syncs += 1;
        let at = s.faults.sync_at;
        let node_index = self.inode;
        if let Some(e) = s.fault_now(index, at) {
            // fsyncgate: the kernel may have dropped the dirty pages; nothing since the last
            // good fsync can be trusted to be on disk, whatever later fsyncs report.
            s.inodes[node_index].sync_failed = true;
            return Err(e);
        }
        let node = &mut s.inodes[node_index];
        if !node.sync_failed {
            node.durable = node.current.clone();
            node.pending.clear();
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.disk.lock();
        s.mutate()?;
        let node = &mut s.inodes[self.inode];
        node.current
            .truncate(usize::try_from(len).unwrap_or(usize::MAX));
        node.pending.push(FileOp::Truncate { len });
        Ok(())
    }

    fn len(&mut self) -> io::Result<u64> {
        Ok(self.disk.lock().inodes[self.inode].current.len() as u64)
    }
}

impl Storage for SimStorage {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut s = self.lock();
        if let Some(&inode) = s.names.get(path) {
            return Ok(Box::new(SimFile {
                disk: self.clone(),
                inode,
            }));
        }
        if !s.parent_exists(path) {
            return Err(not_found(path));
        }
        s.mutate()?;
        let inode = s.inodes.len();
        s.inodes.push(Inode::default());
        s.link(path, inode);
        Ok(Box::new(SimFile {
            disk: self.clone(),
            inode,
        }))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut s = self.lock();
        if !s.parent_exists(path) {
            return Err(not_found(path));
        }
        s.mutate()?;
        // A fresh inode, as O_TRUNC on a file that is then renamed over another behaves the
        // same for our purposes and keeps the model simple.
        let inode = s.inodes.len();
        s.inodes.push(Inode::default());
        s.link(path, inode);
        Ok(Box::new(SimFile {
            disk: self.clone(),
            inode,
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        let s = self.lock();
        let inode = *s.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(io::Cursor::new(s.inodes[inode].current.clone())))
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.lock().dirs.iter().any(|d| d == path)
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.lock();
        s.names.contains_key(path) || s.dirs.iter().any(|d| d == path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if !s.names.contains_key(from) {
            return Err(not_found(from));
        }
        s.mutate()?;
        if let Some(inode) = s.names.remove(from) {
            s.names.insert(to.to_owned(), inode);
        }
        s.dir_ops.push(DirOp::Rename {
            from: from.to_owned(),
            to: to.to_owned(),
        });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.mutate()?;
        let index = s.stats.syncs;
        s.stats.syncs += 1;
        let at = s.faults.sync_at;
        if let Some(e) = s.fault_now(index, at) {
            return Err(e);
        }
        let ops = std::mem::take(&mut s.dir_ops);
        for op in ops {
            if !op.touches(dir) {
                s.dir_ops.push(op);
                continue;
            }
            match op {
                DirOp::Link { path, inode } => {
                    s.durable_names.insert(path, inode);
                }
                DirOp::Rename { from, to } => {
                    if let Some(inode) = s.durable_names.remove(&from) {
                        s.durable_names.insert(to, inode);
                    }
                }
            }
        }
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        // Directories are created durably: the sink's directory exists before it opens.
        for d in dir.ancestors() {
            if !d.as_os_str().is_empty() && !s.dirs.iter().any(|x| x == d) {
                s.dirs.push(d.to_owned());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn synced_data_survives_every_crash_and_unsynced_data_sometimes_does_not() {
        let disk = SimStorage::new();
        disk.create_dir_all(&p("/d")).unwrap();
        let mut f = disk.open_append(&p("/d/a")).unwrap();
        f.append(b"one\n").unwrap();
        f.sync().unwrap();
        disk.sync_dir(&p("/d")).unwrap();
        f.append(b"two\n").unwrap();
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let after = disk.crash(seed);
            let data = after.read_all(&p("/d/a")).unwrap();
            assert!(data.starts_with(b"one\n"), "seed {seed}: {data:?}");
            outcomes.insert(data);
        }
        // kept, dropped, torn prefixes and garbage all occur
        assert!(outcomes.contains(b"one\ntwo\n".as_slice()));
        assert!(outcomes.contains(b"one\n".as_slice()));
        assert!(outcomes.len() > 4);
    }

    #[test]
    fn an_unsynced_directory_entry_can_vanish() {
        let disk = SimStorage::new();
        disk.create_dir_all(&p("/d")).unwrap();
        let mut f = disk.open_append(&p("/d/a")).unwrap();
        f.append(b"x").unwrap();
        f.sync().unwrap();
        let vanished = (0..50)
            .filter(|&s| !disk.crash(s).exists(&p("/d/a")))
            .count();
        assert!(vanished > 0);
        disk.sync_dir(&p("/d")).unwrap();
        assert!((0..50).all(|s| disk.crash(s).exists(&p("/d/a"))));
    }

    #[test]
    fn after_a_failed_fsync_a_later_successful_fsync_proves_nothing() {
        let disk = SimStorage::new();
        disk.create_dir_all(&p("/d")).unwrap();
        let mut f = disk.open_append(&p("/d/a")).unwrap();
        disk.sync_dir(&p("/d")).unwrap();
        disk.set_faults(Faults {
            sync_at: Some(disk.stats().syncs),
            kind: Some(FaultKind::Eio),
            ..Faults::default()
        });
        f.append(b"data").unwrap();
        assert!(f.sync().is_err());
        f.sync().unwrap(); // reports success, as Linux does after dropping the pages
        let lost = (0..100)
            .filter(|&s| disk.crash(s).read_all(&p("/d/a")).unwrap() != b"data")
            .count();
        assert!(lost > 0);
    }

    #[test]
    fn faults_fire_at_the_requested_index() {
        let disk = SimStorage::new();
        disk.create_dir_all(&p("/d")).unwrap();
        let mut f = disk.open_append(&p("/d/a")).unwrap();
        disk.set_faults(Faults {
            write_at: Some(2),
            kind: Some(FaultKind::Enospc),
            ..Faults::default()
        });
        f.append(b"a").unwrap();
        f.append(b"b").unwrap();
        let e = f.append(b"cc").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        f.append(b"d").unwrap();
        assert_eq!(disk.read_all(&p("/d/a")).unwrap(), b"abcd");
    }

    #[test]
    fn a_crashed_process_changes_nothing_more() {
        let disk = SimStorage::new();
        disk.create_dir_all(&p("/d")).unwrap();
        let mut f = disk.open_append(&p("/d/a")).unwrap();
        disk.crash_after(1);
        f.append(b"a").unwrap();
        assert!(f.append(b"b").is_err());
        assert!(f.sync().is_err());
        assert_eq!(disk.read_all(&p("/d/a")).unwrap(), b"a");
    }

    #[test]
    fn xorshift_is_deterministic_per_seed() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = XorShift::new(1);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = XorShift::new(1);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(XorShift::new(0).next_u64(), XorShift::new(1).next_u64());
    }
}
