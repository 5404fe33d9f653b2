//! Idempotent machine setup: installs only what is missing, so a second run
//! costs a few `command -v` checks.
use anyhow::{Context, bail};

use crate::{
    provision::{self, DEBIAN_PACKAGES},
    shell,
};

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
    install_python_venv()?;
    install_rust_src()?;
    install_bpf_linker()?;
    install_musl_target()?;
    install_cargo_tools()?;
    install_python_tools()?;
    // The kernel matrix: QEMU and virtme-ng (crate::vmtest).
    crate::vmtest::install_virtme()
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
        // Tools, not the tests' interpreter: a venv of their own, from the
        // same base Python.
        shell::run(provision::BASE_PYTHON, &["-m", "venv", VENV])?;
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
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .map(|(package, file, _)| (*package, *file))
        .chain(crate::vmtest::PACKAGES.iter().copied())
        .filter(|(_, file)| !std::path::Path::new(file).exists())
        .map(|(package, _)| package)
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
    apt_install(&[], &missing)
}

/// `apt-get install` of `packages`, unattended, without recommends;
/// `options` go before them (another sources list, a target release).
pub fn apt_install(options: &[&str], packages: &[&str]) -> anyhow::Result<()> {
    let mut args = vec![
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
    ];
    args.extend(options);
    args.extend(packages);
    shell::run("env", &args)
}

/// The tests' one Python: a venv from Debian's interpreter at
/// [`provision::VENV`], with the pip packages pinned by version and hash.
/// `--system-site-packages` keeps Debian's python3-flask and
/// python3-psycopg2 importable (psycopg2 from PyPI would either be compiled
/// here or bring its own libpq, not the one the PostgreSQL 15 TLS stack is
/// tested against); the venv's own site-packages come first on `sys.path`,
/// so its pinned packages win over any Debian or hand-installed copy, and
/// the probe checks that they do. A second run costs one probe.
fn install_python_venv() -> anyhow::Result<()> {
    let names: Vec<&str> = provision::PYTHON_REQUIREMENTS
        .iter()
        .map(|(name, _, _)| *name)
        .collect();
    let probe = |what: &str| -> anyhow::Result<Vec<String>> {
        let mut args = vec!["-I", "-c", provision::PROBE];
        args.extend(&names);
        let out = if provision::venv_exists() {
            shell::output(provision::PYTHON, &args)?
        } else {
            String::new()
        };
        let wrong = provision::mismatches(&out);
        if !wrong.is_empty() {
            eprintln!("{what}: {}", wrong.join("; "));
        }
        Ok(wrong)
    };
    if probe("the test venv needs (re)installing")?.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "the test venv {} is missing or not at the pinned versions: run `cargo xtask setup` as root",
            provision::VENV
        );
    }
    // --clear: a venv left half-made or made from another interpreter.
    shell::run(
        provision::BASE_PYTHON,
        &[
            "-m",
            "venv",
            "--clear",
            "--system-site-packages",
            provision::VENV,
        ],
    )?;
    let requirements = format!("{}/requirements.txt", provision::VENV);
    std::fs::write(&requirements, provision::requirements_txt())
        .with_context(|| format!("cannot write {requirements}"))?;
    shell::run(
        provision::PYTHON,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--root-user-action=ignore",
            "--require-hashes",
            "--only-binary=:all:",
            "--no-deps",
            "--ignore-installed",
            "-r",
            &requirements,
        ],
    )?;
    let wrong = probe("after installing, the test venv")?;
    if !wrong.is_empty() {
        bail!(
            "the test venv {} is still wrong: {}",
            provision::VENV,
            wrong.join("; ")
        );
    }
    Ok(())
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
