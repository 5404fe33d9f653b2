//! Room on disk for a run, checked before it starts: a build that runs out
//! of space fails half an hour in with an error about a query cache, not
//! about the disk (the CI run of 2026-12-01 did).
use std::{ffi::CString, os::unix::ffi::OsStrExt, path::Path};

use anyhow::{Context, bail};

const GIB: u64 = 1 << 30;

/// What `cargo xtask test` writes on a clean clone, measured (BENCHMARKS.md,
/// "How long `cargo xtask test` takes": 4.4 GiB under target/ with the VM
/// kernels and dist artifacts, 1.5 GiB of fuzz builds), with a margin.
pub const TEST_RUN_BYTES: u64 = 8 * GIB;

/// Fails, naming the filesystem and both amounts, unless the filesystem
/// holding `target` has `needed` bytes free beyond what `target` already
/// holds (an incremental run reuses what is there).
pub fn ensure_room(target: &Path, needed: u64) -> anyhow::Result<()> {
    let existing = tree_bytes(target);
    let still_needed = needed.saturating_sub(existing);
    let probe = if target.exists() {
        target
    } else {
        target.parent().unwrap_or(Path::new("."))
    };
    let free = free_bytes(probe)?;
    if free < still_needed {
        bail!(
            "not enough disk space for the test run: {} has {:.1} GiB free, and the run needs about {:.1} GiB more under {} (it holds {:.1} GiB now); free some space and run again",
            probe.display(),
            free as f64 / GIB as f64,
            still_needed as f64 / GIB as f64,
            target.display(),
            existing as f64 / GIB as f64,
        );
    }
    Ok(())
}

/// Bytes available to an unprivileged writer: root's reserve is not
/// counted, so the figure is what is safe to plan with.
fn free_bytes(path: &Path) -> anyhow::Result<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{} contains a NUL byte", path.display()))?;
    // SAFETY: statvfs is plain old data; all-zero bytes are a valid value.
    let mut stats = unsafe { std::mem::zeroed::<libc::statvfs>() };
    // SAFETY: c_path is NUL-terminated and stats is a valid, writable struct
    // that outlives the call.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot read free space of {}", path.display()));
    }
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// The bytes of the regular files under `root`; unreadable entries count as
/// empty (the figure only lowers what is asked for).
fn tree_bytes(root: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_cannot_fit_is_refused_naming_the_filesystem() {
        let dir = std::env::temp_dir().join(format!("pinwatch-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let error = ensure_room(&dir, u64::MAX).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(error.contains("not enough disk space"), "{error}");
        assert!(error.contains(&dir.display().to_string()), "{error}");
    }

    #[test]
    fn what_target_already_holds_is_not_asked_for_again() {
        let dir = std::env::temp_dir().join(format!("pinwatch-disk-held-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        std::fs::write(dir.join("nested/blob"), vec![0u8; 4096]).unwrap();
        let held = tree_bytes(&dir);
        // Asking for exactly what is already there needs no free space.
        let result = ensure_room(&dir, held);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(held, 4096);
        assert!(result.is_ok(), "{result:?}");
    }
}
