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
    // `cargo xtask dist`: strip (binutils), the OCI image (buildah), and its
    // checks in tests/tests/dist.rs and oci.rs: lintian on the .deb, rpm's
    // `rpm -qlp`, podman (with runc: crun is not in Debian 12) and skopeo to
    // load and run the image; a venv for the manifest validators of
    // tests/tests/kubernetes.rs.
    ("binutils", "/usr/bin/strip"),
    ("buildah", "/usr/bin/buildah"),
    ("podman", "/usr/bin/podman"),
    ("runc", "/usr/sbin/runc"),
    ("skopeo", "/usr/bin/skopeo"),
    ("lintian", "/usr/bin/lintian"),
    ("rpm", "/usr/bin/rpm"),
    ("python3-venv", "/usr/share/doc/python3-venv"),
];

/// The static release build's target (`cargo xtask dist`).
const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
/// Packagers, pinned to versions that build with rustc 1.95.
const CARGO_TOOLS: &[(&str, &str, &str)] = &[
    ("cargo-deb", "3.8.0", "deb"),
    ("cargo-generate-rpm", "0.21.1", "generate-rpm"),
];
/// Manifest checks for deploy/kubernetes (tests/tests/kubernetes.rs),
/// from PyPI into a venv of Debian's python3.
pub const VENV: &str = "target/venv";
const PYTHON_TOOLS: &[&str] = &["kubernetes-validate==1.37.0", "yamllint==1.38.0"];

const BPF_LINKER_VERSION: &str = "0.10.2";

pub fn run() -> anyhow::Result<()> {
    install_packages()?;
    install_rust_src()?;
    install_bpf_linker()?;
    install_musl_target()?;
    install_cargo_tools()?;
    install_python_tools()
}

fn install_musl_target() -> anyhow::Result<()> {
    let installed = shell::output("rustup", &["target", "list", "--installed"])?;
    if installed.lines().any(|line| line.trim() == MUSL_TARGET) {
        return Ok(());
    }
    shell::run("rustup", &["target", "add", MUSL_TARGET])
}

fn install_cargo_tools() -> anyhow::Result<()> {
    for (tool, version, subcommand) in CARGO_TOOLS {
        let reported =
            shell::output(&shell::cargo_program(), &[subcommand, "--version"]).unwrap_or_default();
        if reported.contains(version) {
            continue;
        }
        let spec = format!("{tool}@{version}");
        shell::cargo(&["install", &spec, "--locked"])
            .with_context(|| format!("installing {tool}"))?;
    }
    Ok(())
}

/// Pinned versions; pip runs only when one is missing.
fn install_python_tools() -> anyhow::Result<()> {
    let pip = format!("{VENV}/bin/pip");
    if !std::path::Path::new(&pip).exists() {
        shell::run("/usr/bin/python3", &["-m", "venv", VENV])?;
    }
    let frozen = shell::output(&pip, &["freeze"])?;
    if PYTHON_TOOLS
        .iter()
        .all(|spec| frozen.lines().any(|line| line.eq_ignore_ascii_case(spec)))
    {
        return Ok(());
    }
    let mut args = vec!["install", "--quiet", "--disable-pip-version-check"];
    args.extend(PYTHON_TOOLS);
    shell::run(&pip, &args)
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
