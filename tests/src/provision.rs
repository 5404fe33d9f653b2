//! What `cargo xtask setup` provides and where: the one list that setup
//! installs from and that the tests (and xtask's demo) run from, so a test
//! never picks up a tool or a Python package that was installed by hand.
//!
//! xtask compiles this same file (`#[path]`): it must stay free of crate
//! dependencies.
use std::path::Path;

/// The one Python environment of tests and scripts: a venv made from
/// Debian's `/usr/bin/python3` with the [`PYTHON_REQUIREMENTS`] below. A
/// fixed path (not under `target/`), so every worktree and clone shares it
/// and `cargo xtask setup` keeps it at the pinned versions.
pub const VENV: &str = "/opt/pinwatch-tests/venv";

/// The venv's interpreter. Named `python3` (a symlink to Debian's), so the
/// kernel's comm and the alerts' `process.name` say `python3`.
pub const PYTHON: &str = "/opt/pinwatch-tests/venv/bin/python3";

/// The interpreter the venv is made from.
pub const BASE_PYTHON: &str = "/usr/bin/python3";

/// Pip packages, pinned exactly and by hash (`pip --require-hashes`):
/// `(name, version, sha256 of the wheel)`. scapy 2.6 is needed: 2.5 (Debian
/// 12's python3-scapy) treats a list given for `DNS(an=…)` as one packet
/// per answer, so the fragmented-reply tests sent 60 small unfragmented
/// packets instead of one large fragmented one.
pub const PYTHON_REQUIREMENTS: &[(&str, &str, &str)] = &[(
    "scapy",
    "2.6.1",
    "88a998572049b511a1f3e44f4aa7c62dd39c6ea2aa1bb58434f503956641789d",
)];

/// Debian packages, a file each installs (to tell whether it is there), and
/// whether the tests run that file by its bare name through `PATH` (then
/// `PATH` must find exactly that file). dnsmasq-base, not dnsmasq: the
/// latter starts a system resolver on port 53.
pub const DEBIAN_PACKAGES: &[(&str, &str, OnPath)] = &[
    ("dnsmasq-base", "/usr/sbin/dnsmasq", OnPath::Yes),
    ("bind9-dnsutils", "/usr/bin/dig", OnPath::Yes),
    ("iproute2", "/usr/sbin/ip", OnPath::Yes),
    ("bpftool", "/usr/sbin/bpftool", OnPath::Yes),
    // The venv's base interpreter, and `venv` to make it (with pip).
    ("python3", BASE_PYTHON, OnPath::No),
    (
        "python3-venv",
        "/usr/lib/python3.11/ensurepip/__init__.py",
        OnPath::No,
    ),
    ("procps", "/usr/bin/pgrep", OnPath::Yes),
    // systemd-analyze verifies dist/pinwatch.service in the tests.
    ("systemd", "/usr/bin/systemd-analyze", OnPath::Yes),
    // tests/tests/replay.rs captures the lab's traffic with tcpdump.
    ("tcpdump", "/usr/bin/tcpdump", OnPath::Yes),
    // The real stack in tests/tests/stack.rs: PostgreSQL 15 with TLS
    // (certificates made with openssl) and a Flask app using psycopg2,
    // Debian's, seen by the venv through its system site-packages.
    (
        "postgresql",
        "/usr/lib/postgresql/15/bin/postgres",
        OnPath::No,
    ),
    ("openssl", "/usr/bin/openssl", OnPath::Yes),
    (
        "python3-flask",
        "/usr/lib/python3/dist-packages/flask/__init__.py",
        OnPath::No,
    ),
    (
        "python3-psycopg2",
        "/usr/lib/python3/dist-packages/psycopg2/__init__.py",
        OnPath::No,
    ),
    // `cargo xtask bench`: B2 saturates a resolver with dnsperf, B7 times
    // tshark (its debconf question is answered by the noninteractive
    // frontend: no setuid dumpcap).
    ("dnsperf", "/usr/bin/dnsperf", OnPath::Yes),
    ("tshark", "/usr/bin/tshark", OnPath::Yes),
    // tests/tests/containers.rs: real containers (podman on runc, an image
    // built FROM scratch around a static busybox).
    ("podman", "/usr/bin/podman", OnPath::Yes),
    ("runc", "/usr/sbin/runc", OnPath::Yes),
    ("buildah", "/usr/bin/buildah", OnPath::Yes),
    ("busybox-static", "/bin/busybox", OnPath::No),
    // `cargo xtask dist`: strip (binutils), the OCI image (buildah), and its
    // checks in tests/tests/dist.rs and oci.rs: lintian on the .deb, rpm's
    // `rpm -qlp`, podman and skopeo to load and run the image.
    ("binutils", "/usr/bin/strip", OnPath::Yes),
    ("skopeo", "/usr/bin/skopeo", OnPath::Yes),
    ("lintian", "/usr/bin/lintian", OnPath::Yes),
    ("rpm", "/usr/bin/rpm", OnPath::Yes),
];

/// Whether a package's file is run by its bare name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnPath {
    Yes,
    No,
}

/// The interpreter every test and script runs, as a program name for
/// `Command::new` or `NetNs::command`.
pub fn python3() -> &'static str {
    PYTHON
}

/// Whether the venv is there at all (setup has run).
pub fn venv_exists() -> bool {
    Path::new(PYTHON).exists()
}

/// Run by [`PYTHON`] with the package names as arguments: prints, per
/// package, `name version origin` of what `import name` would load (the
/// version `-` when it is not installed, the origin `-` when it does not
/// import), and first `sys.prefix`.
pub const PROBE: &str = r#"
import importlib.metadata, importlib.util, sys
print(sys.prefix)
for name in sys.argv[1:]:
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        version = "-"
    spec = importlib.util.find_spec(name)
    print(name, version, spec.origin if spec and spec.origin else "-")
"#;

/// What [`PROBE`] found for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub version: String,
    pub origin: String,
}

/// Why the venv does not match [`PYTHON_REQUIREMENTS`], one line per
/// mismatch (empty when it matches), from [`PROBE`]'s output.
pub fn mismatches(probe_output: &str) -> Vec<String> {
    let mut lines = probe_output.lines();
    let Some(prefix) = lines.next() else {
        return vec![format!("{PYTHON} does not exist or printed nothing")];
    };
    let mut wrong = Vec::new();
    if prefix != VENV {
        wrong.push(format!("sys.prefix is {prefix:?}, not the venv {VENV}"));
    }
    let found: Vec<Found> = lines
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            Some(Found {
                name: parts.next()?.to_owned(),
                version: parts.next()?.to_owned(),
                origin: parts.next()?.to_owned(),
            })
        })
        .collect();
    for (name, version, _) in PYTHON_REQUIREMENTS {
        match found.iter().find(|f| f.name == *name) {
            None => wrong.push(format!("{name}: not probed")),
            Some(f) if f.version != *version => wrong.push(format!(
                "{name}: version {} instead of {version}",
                f.version
            )),
            Some(f) if !f.origin.starts_with(&format!("{VENV}/")) => wrong.push(format!(
                "{name}: `import {name}` loads {}, outside {VENV}",
                f.origin
            )),
            Some(_) => {}
        }
    }
    wrong
}

/// The pip requirements file for [`PYTHON_REQUIREMENTS`].
pub fn requirements_txt() -> String {
    PYTHON_REQUIREMENTS
        .iter()
        .map(|(name, version, sha256)| format!("{name}=={version} --hash=sha256:{sha256}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_scapy_outside_the_venv_is_a_mismatch() {
        let wrong =
            mismatches("/usr\nscapy 2.5.0 /usr/lib/python3/dist-packages/scapy/__init__.py\n");
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert!(wrong[0].contains("sys.prefix is \"/usr\""), "{wrong:?}");
        assert!(
            wrong[1].contains("version 2.5.0 instead of 2.6.1"),
            "{wrong:?}"
        );

        let outside = format!(
            "{VENV}\nscapy 2.6.1 /usr/local/lib/python3.11/dist-packages/scapy/__init__.py\n"
        );
        let wrong = mismatches(&outside);
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert!(
            wrong[0].contains("outside /opt/pinwatch-tests/venv"),
            "{wrong:?}"
        );
    }

    #[test]
    fn the_pinned_venv_matches_and_no_venv_does_not() {
        let good =
            format!("{VENV}\nscapy 2.6.1 {VENV}/lib/python3.11/site-packages/scapy/__init__.py\n");
        assert_eq!(mismatches(&good), Vec::<String>::new());
        assert_eq!(mismatches("").len(), 1);
        assert!(requirements_txt().starts_with("scapy==2.6.1 --hash=sha256:88a9"));
    }
}
