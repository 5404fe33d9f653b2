//! virtme-ng, which boots a kernel under QEMU with the host's root shared
//! read-only (9p) and runs a command in it as root.
//!
//! Installed by `cargo xtask setup` from PyPI into its own venv
//! (target/vmtest/venv), pinned, with Debian's python3 — never into the
//! interpreter first on PATH. QEMU runs in software emulation
//! (`--disable-kvm`): these machines' /dev/kvm is paravirtual and cannot
//! boot stock kernels.
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::shell;

pub const VIRTME_NG_VERSION: &str = "1.42";
/// One boot with its tests, at most (the subset takes a few minutes).
const BOOT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
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
    shell::run(crate::provision::BASE_PYTHON, &["-m", "venv", VENV])?;
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
    // A VM that hangs must not hold CI: coreutils' timeout ends it.
    let mut child = Command::new("timeout")
        .arg(BOOT_TIMEOUT.as_secs().to_string())
        .arg(venv_bin.join("vng"))
        .args(&args)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Piped, not inherited: QEMU opens /proc/self/fd/2 as a file
        // chardev, which truncates whatever file our stderr is (a
        // `cargo xtask test > log 2>&1` lost everything before the VMs).
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start vng")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let forward = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            eprintln!("{}", line.unwrap_or_default());
        }
    });
    // The console as it comes (a VM under emulation is slow), and kept.
    let mut output = String::new();
    for line in BufReader::new(child.stdout.take().context("no stdout")?).lines() {
        let line = line.unwrap_or_default();
        println!("{line}");
        output.push_str(&line);
        output.push('\n');
    }
    let status = child.wait()?;
    let _ = forward.join();
    if status.code() == Some(124) {
        bail!("the VM did not finish within {} s", BOOT_TIMEOUT.as_secs());
    }
    let success = status.success();
    Ok(Boot {
        output,
        success,
        elapsed: started.elapsed(),
    })
}
