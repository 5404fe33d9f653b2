//! What outlives the daemon: its links and maps pinned in bpffs under
//! `[kernel] pin_path`, so the hooks keep capturing into the ring buffer
//! (and counting what does not fit) while no daemon runs.
//!
//! Layout: `PIN_PATH/links/NAME` holds each hook's link (the cgroup
//! programs by name, the interface hook as `iface-IFINDEX`), whatever the
//! version; `PIN_PATH/maps-KEY/MAP` holds the maps, KEY naming the eBPF
//! object they were made for. A daemon whose object has the same key adopts
//! the maps (and with them the backlog in the ring buffer); another key is
//! an incompatible version, whose maps are replaced. Either way the links
//! are kept and switched to the new programs with BPF_LINK_UPDATE, so no
//! hook is ever without a program.
use std::{
    collections::BTreeSet,
    ffi::CString,
    io,
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use super::{EBPF_OBJECT, bpf_sys};

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const LINKS: &str = "links";
const MAPS_PREFIX: &str = "maps-";
/// Prefix of the interface hook's link pins.
pub const IFACE_PREFIX: &str = "iface-";

/// Every map the object declares, pinned by name.
pub const MAPS: [&str; 10] = [
    "EVENTS",
    "EVENTS_LOST",
    "WATCHED_PORTS",
    "WATCHED_PORT_BITS",
    "DB_FLOWS",
    "PINNED_V4",
    "PINNED_V6",
    "FRAGMENTS",
    "DNS_OWNERS",
    "DAEMON",
];

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("cannot mount a bpffs at {path} for pinwatch's pins: {source}")]
    Mount { path: PathBuf, source: io::Error },
    #[error("cannot create {path} for pinwatch's pins: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot remove the pin {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("cannot read the pins under {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

/// The pin directory of this daemon's object.
#[derive(Debug, Clone)]
pub struct PinDir {
    root: PathBuf,
    key: String,
}

/// What [`PinDir::prepare`] found.
#[derive(Debug, Default)]
pub struct Found {
    /// The maps of this very object were pinned: the backlog is readable.
    pub compatible_maps: bool,
    /// Maps pinned for other objects (incompatible versions).
    pub other_maps: Vec<PathBuf>,
}

impl PinDir {
    pub fn new(root: &Path) -> PinDir {
        PinDir {
            root: root.to_owned(),
            key: format!("{:016x}", fnv1a(EBPF_OBJECT)),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn maps_dir(&self) -> PathBuf {
        self.root.join(format!("{MAPS_PREFIX}{}", self.key))
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.maps_dir().join(name)
    }

    pub fn link(&self, name: &str) -> PathBuf {
        self.root.join(LINKS).join(name)
    }

    /// Mounts a bpffs at the pin path's parent when none is there, creates
    /// the directories, and says what an earlier run left.
    pub fn prepare(&self) -> Result<Found, PinError> {
        let parent = self.root.parent().unwrap_or(Path::new("/"));
        if !is_bpffs(&self.root) && !is_bpffs(parent) {
            mount_bpffs(parent)?;
        }
        let found = self.found()?;
        for dir in [self.root.join(LINKS), self.maps_dir()] {
            std::fs::create_dir_all(&dir)
                .map_err(|source| PinError::Create { path: dir, source })?;
        }
        Ok(found)
    }

    fn found(&self) -> Result<Found, PinError> {
        let mut found = Found::default();
        for entry in self.entries(&self.root)? {
            let name = entry.file_name().unwrap_or_default().to_string_lossy();
            if let Some(key) = name.strip_prefix(MAPS_PREFIX) {
                if key == self.key {
                    found.compatible_maps =
                        std::fs::read_dir(&entry).is_ok_and(|mut dir| dir.next().is_some());
                } else {
                    found.other_maps.push(entry.clone());
                }
            }
        }
        Ok(found)
    }

    fn entries(&self, dir: &Path) -> Result<Vec<PathBuf>, PinError> {
        match std::fs::read_dir(dir) {
            Ok(entries) => Ok(entries.flatten().map(|e| e.path()).collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(PinError::Read {
                path: dir.to_owned(),
                source,
            }),
        }
    }

    /// The pinned links' names.
    pub fn link_names(&self) -> Result<Vec<String>, PinError> {
        Ok(self
            .entries(&self.root.join(LINKS))?
            .iter()
            .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .collect())
    }

    /// Ids of the links pinned here, and of the programs they run: what a
    /// compatible daemon adopts, never stale.
    pub fn pinned_ids(&self) -> Result<PinnedIds, PinError> {
        let mut ids = PinnedIds::default();
        for name in self.link_names()? {
            let Ok(link) = bpf_sys::obj_get(&self.link(&name)) else {
                continue;
            };
            if let Ok(id) = bpf_sys::link_id(link.as_fd()) {
                ids.links.insert(id);
            }
            if let Ok(id) = bpf_sys::link_prog_id(link.as_fd()) {
                ids.programs.insert(id);
            }
        }
        Ok(ids)
    }

    /// Removes one pin; gone already is fine.
    pub fn unpin(&self, path: &Path) -> Result<(), PinError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(PinError::Remove {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Removes a directory of pins and the directory.
    pub fn unpin_dir(&self, dir: &Path) -> Result<(), PinError> {
        for entry in self.entries(dir)? {
            self.unpin(&entry)?;
        }
        remove_dir(dir)
    }

    /// Removes every pin of every version, and the pin path itself. Links
    /// stay attached while a descriptor holds them: the caller closes its
    /// own afterwards.
    pub fn remove_all(&self) -> Result<(), PinError> {
        for entry in self.entries(&self.root)? {
            self.unpin_dir(&entry)?;
        }
        remove_dir(&self.root)
    }
}

/// Removes an empty directory; gone already is fine.
fn remove_dir(dir: &Path) -> Result<(), PinError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PinError::Remove {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// A link for `program` at a hook: the one pinned at `pin` switched to it
/// in one step, or a new one (`create`), pinned there. A pin whose link
/// the kernel will not update (another hook) is replaced, the new link
/// attached before the old pin goes.
pub fn link_or_update(
    program: BorrowedFd<'_>,
    pin: Option<&Path>,
    create: impl FnOnce(BorrowedFd<'_>) -> std::io::Result<OwnedFd>,
) -> std::io::Result<OwnedFd> {
    if let Some(pin) = pin
        && let Ok(link) = bpf_sys::obj_get(pin)
    {
        match bpf_sys::link_update(link.as_fd(), program) {
            Ok(()) => return Ok(link),
            Err(error) => {
                tracing::warn!(pin = %pin.display(), "cannot switch a pinned link to the new program ({error}); replacing it");
            }
        }
    }
    let link = create(program)?;
    if let Some(pin) = pin {
        match std::fs::remove_file(pin) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        bpf_sys::obj_pin(link.as_fd(), pin)?;
    }
    Ok(link)
}

/// Link and program ids behind the pins.
#[derive(Debug, Default, Clone)]
pub struct PinnedIds {
    pub links: BTreeSet<u32>,
    pub programs: BTreeSet<u32>,
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain data; all-zero is a valid value.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a writable statfs.
    let ret = unsafe { libc::statfs(path.as_ptr(), &mut fs) };
    #[allow(
        clippy::unnecessary_cast,
        reason = "f_type is i64 with glibc, u64 with musl (the release build)"
    )]
    let f_type = fs.f_type as i64;
    ret == 0 && f_type == BPF_FS_MAGIC
}

fn mount_bpffs(at: &Path) -> Result<(), PinError> {
    let error = |source| PinError::Mount {
        path: at.to_owned(),
        source,
    };
    std::fs::create_dir_all(at).map_err(error)?;
    let target = CString::new(at.as_os_str().as_bytes())
        .map_err(|_| error(io::Error::from(io::ErrorKind::InvalidInput)))?;
    // SAFETY: valid NUL-terminated strings; no data argument.
    let ret = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if ret != 0 {
        return Err(error(io::Error::last_os_error()));
    }
    tracing::info!(path = %at.display(), "mounted a bpffs for pinwatch's pins");
    Ok(())
}

/// FNV-1a, 64 bits: stable across builds and toolchains, which std's
/// hasher does not promise.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_names_the_object_and_differs_for_another() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a(b"object v1"), fnv1a(b"object v2"));
        let pins = PinDir::new(Path::new("/sys/fs/bpf/pinwatch"));
        assert!(
            pins.map("EVENTS")
                .to_string_lossy()
                .starts_with("/sys/fs/bpf/pinwatch/maps-"),
            "{}",
            pins.map("EVENTS").display()
        );
        assert_eq!(
            pins.link("pw_connect4"),
            Path::new("/sys/fs/bpf/pinwatch/links/pw_connect4")
        );
    }
}
