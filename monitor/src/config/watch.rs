//! `[config] watch`: notices that the configuration file changed, so the
//! daemon can reload it as SIGHUP does where nobody sends signals (a pod).
//!
//! inotify watches the file's directory, not the file: editors that write a
//! new file and rename it over the old one, and Kubernetes, which updates a
//! mounted ConfigMap by writing a new `..<timestamp>` directory and renaming
//! a `..data` symlink over the old one, replace the inode a watch on the file
//! would follow. Whatever happens in the directory, the file is re-read once
//! the directory has been quiet for [`QUIET`], and only contents that differ
//! from those last loaded or refused count as a change.
use std::{
    os::fd::{AsFd, AsRawFd, RawFd},
    path::{Path, PathBuf},
    time::Duration,
};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::{Interest, unix::AsyncFd};

/// How long the directory must stay quiet before the file is re-read: a
/// ConfigMap update or an editor's save is a burst of events.
pub const QUIET: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("config.watch = true: the configuration was not read from a file")]
    NoFile,
    #[error("config.watch = true: cannot watch {}: {source}", dir.display())]
    Inotify {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the file held when last looked at: its SHA-256 (as in
/// `Config::hash`), or that it could not be read.
type Contents = Option<String>;

/// nix's Inotify lends its fd as `AsFd`; tokio's AsyncFd wants `AsRawFd`.
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub struct ConfigWatch {
    inotify: AsyncFd<InotifyFd>,
    path: PathBuf,
    seen: Contents,
    /// Events arrived and the quiet period has not passed yet. Kept here so
    /// that [`ConfigWatch::changed`] can be cancelled (it runs in a select)
    /// without losing them.
    dirty: bool,
}

impl ConfigWatch {
    /// Watches the directory of `path`, whose contents in force hash to
    /// `hash`.
    pub fn new(path: &Path, hash: &str) -> Result<ConfigWatch, WatchError> {
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let error = |source: nix::Error| WatchError::Inotify {
            dir: dir.clone(),
            source: source.into(),
        };
        let inotify =
            Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(error)?;
        // Every way a file in the directory can come, go or change.
        let mask = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        inotify.add_watch(&dir, mask).map_err(error)?;
        // SAFETY: the InotifyFd owns the inotify fd for as long as it lives,
        // and the AsyncFd owns the InotifyFd: the fd stays open and the same.
        let inotify =
            unsafe { AsyncFd::register_with_interest(InotifyFd(inotify), Interest::READABLE) }
                .map_err(|error| WatchError::Inotify {
                    dir: dir.clone(),
                    source: error.into_parts().1,
                })?;
        tracing::info!(file = %path.display(), dir = %dir.display(), "watching the configuration file for changes");
        Ok(ConfigWatch {
            inotify,
            path: path.to_owned(),
            seen: Some(hash.to_owned()),
            dirty: false,
        })
    }

    /// Returns once the file's contents differ from those last seen (then
    /// they count as seen). Cancel-safe.
    pub async fn changed(&mut self) {
        loop {
            if !self.dirty {
                self.events().await;
                self.dirty = true;
                continue;
            }
            if tokio::time::timeout(QUIET, self.events()).await.is_ok() {
                continue;
            }
            self.dirty = false;
            let now = contents(&self.path);
            if now != self.seen {
                self.seen = now;
                return;
            }
        }
    }

    /// Takes the file as it is now as seen: after a reload by SIGHUP, so
    /// the watch does not reload the same contents again.
    pub fn rescan(&mut self) {
        self.seen = contents(&self.path);
    }

    /// Waits for and consumes at least one batch of events.
    async fn events(&self) {
        loop {
            let Ok(mut ready) = self.inotify.readable().await else {
                // The fd cannot fail readiness while it lives; stay quiet.
                return std::future::pending().await;
            };
            match self.inotify.get_ref().0.read_events() {
                Ok(events) if !events.is_empty() => {
                    if events
                        .iter()
                        .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
                    {
                        tracing::warn!(
                            file = %self.path.display(),
                            "the configuration file's directory was removed: changes are no longer watched (SIGHUP still reloads)"
                        );
                    }
                    return;
                }
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
                Err(error) => {
                    tracing::warn!("cannot read configuration watch events: {error}");
                    ready.clear_ready();
                }
            }
        }
    }
}

fn contents(path: &Path) -> Contents {
    std::fs::read(path)
        .ok()
        .map(|bytes| super::sha256_hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    /// `changed()` within a few quiet periods, or `false`.
    async fn changed_soon(watch: &mut ConfigWatch) -> bool {
        tokio::time::timeout(QUIET * 8, watch.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn sees_a_kubernetes_configmap_swap() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let swap_in = |generation: &str, text: &str| {
            let data = root.join(generation);
            std::fs::create_dir(&data).unwrap();
            write(&data.join("pinwatch.toml"), text);
            let tmp = root.join("..data_tmp");
            std::os::unix::fs::symlink(generation, &tmp).unwrap();
            std::fs::rename(&tmp, root.join("..data")).unwrap();
        };
        swap_in("..2026_01", "one");
        std::os::unix::fs::symlink("..data/pinwatch.toml", root.join("pinwatch.toml")).unwrap();
        let path = root.join("pinwatch.toml");
        let mut watch = ConfigWatch::new(&path, &super::super::sha256_hex(b"one")).unwrap();

        swap_in("..2026_02", "two");
        std::fs::remove_dir_all(root.join("..2026_01")).unwrap();
        assert!(
            changed_soon(&mut watch).await,
            "the ..data swap went unseen"
        );
        // Nothing new: no change, even with events in the directory.
        write(&root.join("unrelated"), "x");
        assert!(!changed_soon(&mut watch).await);
    }

    #[tokio::test]
    async fn sees_an_editor_replacing_the_file_and_a_removal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinwatch.toml");
        write(&path, "one");
        let mut watch = ConfigWatch::new(&path, &super::super::sha256_hex(b"one")).unwrap();
        let new = dir.path().join(".pinwatch.toml.swp");
        write(&new, "two");
        std::fs::rename(&new, &path).unwrap();
        assert!(changed_soon(&mut watch).await);
        // The same contents written again are no change.
        write(&path, "two");
        assert!(!changed_soon(&mut watch).await);
        std::fs::remove_file(&path).unwrap();
        assert!(changed_soon(&mut watch).await, "a removed file is a change");
    }

    #[tokio::test]
    async fn rescan_takes_the_current_file_as_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinwatch.toml");
        write(&path, "one");
        let mut watch = ConfigWatch::new(&path, &super::super::sha256_hex(b"one")).unwrap();
        write(&path, "two");
        watch.rescan();
        assert!(!changed_soon(&mut watch).await);
    }
}
