//! Idempotent machine setup: installs only what is missing, so a second run
//! costs a few `command -v` checks.
use anyhow::{Context, bail};

use crate::shell;

/// Debian packages and a file each installs, to tell whether it is there.
/// dnsmasq-base, not dnsmasq: the latter starts a system resolver on port 53.
const PACKAGES: &[(&str, &str)] = &[
    ("dnsmasq-base", "/usr/sbin/dnsmasq"),
    ("bind9-dnsutils", "/usr/bin/dig"),
    ("iproute2", "/usr/sbin/ip"),
    ("bpftool", "/usr/sbin/bpftool"),
    ("python3", "/usr/bin/python3"),
    ("procps", "/usr/bin/pgrep"),
    // systemd-analyze verifies dist/pinwatch.service in the tests.
    ("systemd", "/usr/bin/systemd-analyze"),
    // tests/tests/replay.rs captures the lab's traffic with tcpdump.
    ("tcpdump", "/usr/bin/tcpdump"),
    // The real stack in tests/tests/stack.rs: PostgreSQL 15 with TLS
    // (certificates made with openssl) and a Flask app using psycopg2.
    ("postgresql", "/usr/lib/postgresql/15/bin/postgres"),
    ("openssl", "/usr/bin/openssl"),
    (
        "python3-flask",
        "/usr/lib/python3/dist-packages/flask/__init__.py",
    ),
    (
        "python3-psycopg2",
        "/usr/lib/python3/dist-packages/psycopg2/__init__.py",
    ),
    // tests/tests/spoofing.rs forges DNS replies with scapy (Debian's
    // package: importable by /usr/bin/python3, no pip needed as root).
    (
        "python3-scapy",
        "/usr/lib/python3/dist-packages/scapy/__init__.py",
    ),
    // `cargo xtask bench`: B2 saturates a resolver with dnsperf, B7 times
    // tshark (its debconf question is answered by the noninteractive
    // frontend: no setuid dumpcap).
    ("dnsperf", "/usr/bin/dnsperf"),
    ("tshark", "/usr/bin/tshark"),
    // tests/tests/containers.rs: real containers (podman on runc, an image
    // built FROM scratch around a static busybox).
    ("podman", "/usr/bin/podman"),
    ("runc", "/usr/sbin/runc"),
    ("buildah", "/usr/bin/buildah"),
    ("busybox-static", "/bin/busybox"),
];

const BPF_LINKER_VERSION: &str = "0.10.2";

pub fn run() -> anyhow::Result<()> {
    install_packages()?;
    install_rust_src()?;
    install_bpf_linker()
}

fn install_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, file)| !std::path::Path::new(file).exists())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages {}: run `cargo xtask setup` as root",
            missing.join(" ")
        );
    }
    shell::run("apt-get", &["update", "-qq"])?;
    let mut args = vec![
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
    ];
    args.extend(&missing);
    shell::run("env", &args)
}

/// The eBPF crate is built with nightly and `-Z build-std=core`.
fn install_rust_src() -> anyhow::Result<()> {
    let toolchains = shell::output("rustup", &["toolchain", "list"])?;
    if !toolchains.lines().any(|line| line.starts_with("nightly")) {
        bail!(
            "the nightly toolchain is missing (rustup toolchain list shows none); the eBPF programs need it"
        );
    }
    let installed = shell::output(
        "rustup",
        &["component", "list", "--installed", "--toolchain", "nightly"],
    )?;
    if installed.lines().any(|line| line.starts_with("rust-src")) {
        return Ok(());
    }
    shell::run(
        "rustup",
        &["component", "add", "rust-src", "--toolchain", "nightly"],
    )
}

/// bpf-linker 0.10.2 links against rustc's own LLVM; later ones want a
/// system LLVM this Debian lacks.
fn install_bpf_linker() -> anyhow::Result<()> {
    let version = shell::output("bpf-linker", &["--version"]).unwrap_or_default();
    if version.contains(BPF_LINKER_VERSION) {
        return Ok(());
    }
    let spec = format!("bpf-linker@{BPF_LINKER_VERSION}");
    shell::cargo(&["install", &spec, "--locked"]).context("installing bpf-linker")
}

pub fn is_root() -> bool {
    shell::output("id", &["-u"]).is_ok_and(|uid| uid.trim() == "0")
}
