//! The test-setup check: every tool and Python package the tests use comes
//! from what `cargo xtask setup` installs (tests/src/provision.rs), not from
//! whatever a machine happens to have first on `PATH` or installed by hand.
//! Run it as a fresh machine would:
//!     ../shared/tools/fresh-path cargo test -p pinwatch-integration-tests --test provisioned
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use pinwatch_integration_tests::{
    provision::{
        self, BASE_PYTHON, DEBIAN_PACKAGES, OnPath, PROBE, PYTHON, PYTHON_REQUIREMENTS, VENV,
    },
    python3,
};

const SETUP: &str = "run `cargo xtask setup` (as root)";

fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|e| panic!("{}: {e}; {SETUP}", path.display()))
}

/// Runs the setup's interpreter with `args`; its stdout, or a panic with
/// what it said.
fn run_python(args: &[&str]) -> String {
    assert!(
        provision::venv_exists(),
        "the tests' interpreter {PYTHON} does not exist: {SETUP}"
    );
    let out = Command::new(python3())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e}"));
    assert!(
        out.status.success(),
        "{PYTHON} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_interpreter_is_the_setups_venv_named_python3() {
    assert_eq!(python3(), PYTHON, "tests run the setup's interpreter");
    assert_eq!(
        Path::new(PYTHON).file_name().and_then(|n| n.to_str()),
        Some("python3"),
        "alerts name the process by its executable: it must be python3"
    );
    let cfg = fs::read_to_string(format!("{VENV}/pyvenv.cfg"))
        .unwrap_or_else(|e| panic!("{VENV}/pyvenv.cfg: {e}; {SETUP}"));
    assert!(
        cfg.lines().any(|l| l.replace(' ', "") == "home=/usr/bin"),
        "the venv is not made from Debian's {BASE_PYTHON}:\n{cfg}"
    );
    assert_eq!(
        canonical(Path::new(PYTHON)),
        canonical(Path::new(BASE_PYTHON)),
        "the venv's python3 is Debian's interpreter"
    );
    let report = run_python(&[
        "-c",
        "import sys; print(sys.prefix); print(open('/proc/self/comm').read().strip())",
    ]);
    assert_eq!(
        report.lines().collect::<Vec<_>>(),
        [VENV, "python3"],
        "sys.prefix and the kernel's comm of {PYTHON}"
    );
}

#[test]
fn pinned_packages_import_from_the_venv_at_their_versions() {
    let mut args = vec!["-c", PROBE];
    args.extend(PYTHON_REQUIREMENTS.iter().map(|(name, _, _)| *name));
    let report = run_python(&args);
    let wrong = provision::mismatches(&report);
    assert!(
        wrong.is_empty(),
        "the venv does not hold the pinned packages ({SETUP}):\n{}\nprobe said:\n{report}",
        wrong.join("\n")
    );
}

#[test]
fn debian_python_packages_import_from_debian() {
    let report = run_python(&["-c", PROBE, "flask", "psycopg2"]);
    for (package, file, _) in DEBIAN_PACKAGES {
        let Some(module) = package.strip_prefix("python3-") else {
            continue;
        };
        if module == "venv" {
            continue;
        }
        let line = report
            .lines()
            .find(|l| l.starts_with(&format!("{module} ")))
            .unwrap_or_else(|| panic!("{module} was not probed:\n{report}"));
        assert!(
            line.ends_with(&format!(" {file}")),
            "`import {module}` does not load {package}'s {file}: {line}"
        );
    }
}

/// Where `PATH` finds `name`, as `ip netns exec` and `Command::new` do.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[test]
fn tools_run_by_name_are_the_ones_setup_installs() {
    let mut wrong = Vec::new();
    for (package, file, on) in DEBIAN_PACKAGES {
        let file = Path::new(file);
        if !file.exists() {
            wrong.push(format!("{package}: {} is missing", file.display()));
            continue;
        }
        if *on == OnPath::No {
            continue;
        }
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        match on_path(name) {
            None => wrong.push(format!("{name}: not on PATH")),
            Some(found) if canonical(&found) != canonical(file) => wrong.push(format!(
                "{name}: PATH finds {} first, not {package}'s {}",
                found.display(),
                file.display()
            )),
            Some(_) => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "tools the tests run are not the setup's ({SETUP}):\n{}",
        wrong.join("\n")
    );
}

/// Lines of the workspace's tests and xtask sources that start an
/// interpreter other than [`python3()`].
fn other_interpreters(root: &Path) -> Vec<String> {
    const STARTS: [&str; 4] = [
        "command(\"python",
        "new(\"python",
        "\"/usr/bin/python",
        "\"/usr/local/bin/python",
    ];
    let mut found = Vec::new();
    let mut dirs = vec![root.join("tests"), root.join("xtask")];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("tests/src/provision.rs")
                && !path.ends_with("tests/tests/provisioned.rs")
            {
                let text = fs::read_to_string(&path).unwrap_or_default();
                for (n, line) in text.lines().enumerate() {
                    if STARTS.iter().any(|s| line.contains(s)) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_test_and_script_runs_the_setups_python() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace");
    let found = other_interpreters(root);
    assert!(
        found.is_empty(),
        "these start a python other than provision::python3() ({PYTHON}):\n{}",
        found.join("\n")
    );
}
