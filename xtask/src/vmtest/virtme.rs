//! virtme-ng, which boots a kernel under QEMU with the host's root shared
//! read-only (9p) and runs a command in it as root.
//!
//! Installed by `cargo xtask setup` from PyPI into its own venv
//! (target/vmtest/venv), pinned, with Debian's python3 — never into the
//! interpreter first on PATH. QEMU runs in software emulation
//! (`--disable-kvm`): these machines' /dev/kvm is paravirtual and cannot
//! boot stock kernels.
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::shell;

pub const VIRTME_NG_VERSION: &str = "1.42";
const VENV: &str = "target/vmtest/venv";

/// Debian packages virtme-ng and QEMU need, and a file each installs.
pub const PACKAGES: &[(&str, &str)] = &[
    ("python3-venv", "/usr/lib/python3.11/venv/__init__.py"),
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("busybox-static", "/bin/busybox"),
    ("kmod", "/usr/bin/kmod"),
    ("udev", "/usr/bin/udevadm"),
];

/// Installs the pinned virtme-ng unless that version is there.
pub fn install() -> anyhow::Result<()> {
    let venv = Path::new(VENV);
    let pip = venv.join("bin/pip");
    let installed =
        shell::output(&pip.to_string_lossy(), &["show", "virtme-ng"]).unwrap_or_default();
    if installed
        .lines()
        .any(|line| line.trim() == format!("Version: {VIRTME_NG_VERSION}"))
    {
        return Ok(());
    }
    shell::run("/usr/bin/python3", &["-m", "venv", VENV])?;
    let spec = format!("virtme-ng=={VIRTME_NG_VERSION}");
    shell::run(&pip.to_string_lossy(), &["install", "--quiet", &spec])
}

/// What one boot printed and how it ended.
pub struct Boot {
    pub output: String,
    pub success: bool,
    pub elapsed: Duration,
}

/// Boots `image` and runs `script` (a bash script, since vng's `--exec`
/// runs under /bin/sh) inside; `rw_dir` is writable from the guest. vng's
/// exit status is the script's.
pub fn boot(image: &Path, script: &Path, rw_dir: &Path) -> anyhow::Result<Boot> {
    let venv_bin = Path::new(VENV)
        .canonicalize()
        .context("virtme-ng is not installed: run `cargo xtask setup`")?
        .join("bin");
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let exec = format!("/bin/bash {}", script.display());
    let args: Vec<String> = vec![
        "--disable-kvm".into(),
        "--run".into(),
        image.display().to_string(),
        "--memory".into(),
        "2G".into(),
        "--cpus".into(),
        "2".into(),
        format!("--rwdir={}", rw_dir.display()),
        "--exec".into(),
        exec,
    ];
    eprintln!("+ vng {}", args.join(" "));
    let started = Instant::now();
    let out = Command::new(venv_bin.join("vng"))
        .args(&args)
        .env("PATH", path)
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot start vng")?;
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    if output.contains("does not exist") && !out.status.success() && output.len() < 400 {
        bail!("vng could not boot {}: {output}", image.display());
    }
    Ok(Boot {
        output,
        success: out.status.success(),
        elapsed: started.elapsed(),
    })
}
