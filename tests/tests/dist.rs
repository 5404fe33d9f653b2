//! `cargo xtask dist`: what each artifact holds, and the .deb installed on
//! this machine catching a forged answer, then purged.
//!
//! Run as root, serially (the install test loads pinwatch's programs):
//!     cargo build -p pinwatch
//!     cargo test -p pinwatch-integration-tests --test dist -- --test-threads=1
use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, DNS_V4, Daemon, Dist, DnsRecords, Dnsmasq, Lab, dig, field, require_root,
    str_field,
};
use serde_json::Value;

const DB_HOST: &str = "db.lab.test";
const FORGED: &str = "203.0.113.66";

/// Runs `program args…`, panicking with its output unless it exits 0.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 paths")
}

fn set(lines: &str) -> BTreeSet<String> {
    lines
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn strings(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Asserts the ELF file asks for no interpreter and no shared library.
fn assert_static(binary: &Path) {
    let headers = run(
        "readelf",
        &["--program-headers", "--dynamic", path_str(binary)],
    );
    assert!(
        !headers.contains("INTERP"),
        "{} wants an interpreter:\n{headers}",
        binary.display()
    );
    assert!(
        !headers.contains("(NEEDED)"),
        "{} needs shared libraries:\n{headers}",
        binary.display()
    );
}

#[test]
fn the_tarball_holds_a_static_binary_that_runs_and_its_files() {
    let dist = Dist::built();
    let listing = run("tar", &["-tzf", path_str(&dist.tarball())]);
    let root = format!("pinwatch-{}-x86_64-unknown-linux-musl", dist.version);
    let want: BTreeSet<String> = [
        "",
        "pinwatch",
        "pinwatch.service",
        "pinwatch.sysusers",
        "pinwatch.toml",
        "README.md",
        "LICENSE",
    ]
    .iter()
    .map(|f| format!("{root}/{f}"))
    .collect();
    assert_eq!(set(&listing), want);

    let dir = tempfile::tempdir().unwrap();
    run(
        "tar",
        &[
            "-xzf",
            path_str(&dist.tarball()),
            "-C",
            path_str(dir.path()),
        ],
    );
    let top = dir.path().join(&root);
    let binary = top.join("pinwatch");
    assert_static(&binary);
    let version = run(path_str(&binary), &["--version"]);
    assert_eq!(version.trim(), format!("pinwatch {}", dist.version));
    // The binary checks the example it ships with.
    run(
        path_str(&binary),
        &["check-config", "-c", path_str(&top.join("pinwatch.toml"))],
    );
    let licence = fs::read_to_string(top.join("LICENSE")).unwrap();
    assert!(licence.contains("Apache License") && licence.contains("Version 2.0"));
    // The tarball's unit is for a binary installed to /usr/local/bin.
    let unit = fs::read_to_string(top.join("pinwatch.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/local/bin/pinwatch run"),
        "{unit}"
    );
}

#[test]
fn the_deb_has_the_layout_conffiles_and_no_lintian_errors() {
    let dist = Dist::built();
    let deb = dist.deb();
    let fields = run(
        "dpkg-deb",
        &[
            "--field",
            path_str(&deb),
            "Package",
            "Version",
            "Architecture",
            "Depends",
        ],
    );
    assert!(fields.contains("Package: pinwatch\n"), "{fields}");
    assert!(
        fields.contains(&format!("Version: {}-1\n", dist.version)),
        "{fields}"
    );
    assert!(fields.contains("Architecture: amd64\n"), "{fields}");
    assert!(
        !fields.contains("Depends:"),
        "a static binary depends on nothing: {fields}"
    );

    let files: BTreeSet<String> = run("dpkg-deb", &["--contents", path_str(&deb)])
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_owned())
        .collect();
    for path in [
        "/usr/bin/pinwatch",
        "/lib/systemd/system/pinwatch.service",
        "/usr/lib/sysusers.d/pinwatch.conf",
        "/etc/pinwatch/pinwatch.toml",
        "/usr/share/doc/pinwatch/copyright",
        "/usr/share/doc/pinwatch/changelog.Debian.gz",
    ] {
        assert!(
            files.contains(path),
            "{path} missing from the .deb: {files:?}"
        );
    }

    let control = tempfile::tempdir().unwrap();
    run(
        "dpkg-deb",
        &["--control", path_str(&deb), path_str(control.path())],
    );
    let conffiles = fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert_eq!(set(&conffiles), strings(&["/etc/pinwatch/pinwatch.toml"]));
    let postinst = fs::read_to_string(control.path().join("postinst")).unwrap();
    assert!(
        postinst.contains("systemd-sysusers pinwatch.conf"),
        "{postinst}"
    );
    assert!(
        postinst.contains("[ -d /run/systemd/system ]"),
        "{postinst}"
    );

    let root = tempfile::tempdir().unwrap();
    run(
        "dpkg-deb",
        &["--extract", path_str(&deb), path_str(root.path())],
    );
    let unit = fs::read_to_string(root.path().join("lib/systemd/system/pinwatch.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/bin/pinwatch run -c /etc/pinwatch/pinwatch.toml\n"),
        "{unit}"
    );
    assert_static(&root.path().join("usr/bin/pinwatch"));

    let out = Command::new("lintian")
        .args(["--fail-on", "error", "--info", path_str(&deb)])
        .output()
        .expect("lintian runs (cargo xtask setup installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !report.lines().any(|l| l.starts_with("E:")),
        "lintian found errors ({}):\n{report}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_rpm_has_the_same_layout() {
    let dist = Dist::built();
    let rpm = path_str(&dist.rpm()).to_owned();
    let files = run("rpm", &["-qlp", &rpm]);
    assert_eq!(
        set(&files),
        strings(&[
            "/etc/pinwatch/pinwatch.toml",
            "/usr/bin/pinwatch",
            "/usr/lib/systemd/system/pinwatch.service",
            "/usr/lib/sysusers.d/pinwatch.conf",
            "/usr/share/doc/pinwatch/README.md",
            "/usr/share/licenses/pinwatch/LICENSE",
        ])
    );
    assert_eq!(
        set(&run("rpm", &["-qcp", &rpm])),
        strings(&["/etc/pinwatch/pinwatch.toml"])
    );
    let nvr = run(
        "rpm",
        &[
            "-qp",
            "--queryformat",
            "%{NAME} %{VERSION} %{RELEASE} %{ARCH}",
            &rpm,
        ],
    );
    assert_eq!(nvr, format!("pinwatch {} 1 x86_64", dist.version));
    let scripts = run("rpm", &["-qp", "--scripts", &rpm]);
    assert!(
        scripts.contains("systemd-sysusers pinwatch.conf"),
        "{scripts}"
    );
}

#[test]
fn sha256sums_verify_every_artifact() {
    let dist = Dist::built();
    let sums = fs::read_to_string(dist.dir.join("SHA256SUMS")).unwrap();
    let names: BTreeSet<String> = sums
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_owned)
        .collect();
    let artifacts: BTreeSet<String> = [dist.tarball(), dist.deb(), dist.rpm(), dist.oci()]
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, artifacts);
    let out = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&dist.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Purges pinwatch whatever happens to the test.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "pinwatch"]).output();
    }
}

const PACKAGE_PATHS: &[&str] = &[
    "/usr/bin/pinwatch",
    "/lib/systemd/system/pinwatch.service",
    "/usr/lib/sysusers.d/pinwatch.conf",
    "/etc/pinwatch",
    "/usr/share/doc/pinwatch",
    "/var/log/pinwatch",
];

/// The installed example, pointed at the lab: its database's hostname, the
/// lab's resolver trusted, alerts to the test's file, the socket in its dir.
fn adjust_installed(text: &str, alerts: &Path, socket: &Path) -> String {
    let replace = |text: String, from: &str, to: &str| {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from:?} in the installed config"
        );
        text.replacen(from, to, 1)
    };
    let text = replace(
        text.to_owned(),
        "hostnames = [\"cockroach.prod.internal\"]",
        &format!("hostnames = [\"{DB_HOST}\"]"),
    );
    let text = replace(
        text,
        "# trusted_resolvers = [\"192.0.2.53\", \"2001:db8::53\"]",
        &format!("trusted_resolvers = [\"{DNS_V4}\"]"),
    );
    let text = replace(
        text,
        "sink = \"stdout\"",
        &format!("sink = \"file\"\npath = \"{}\"", alerts.display()),
    );
    replace(
        text,
        "socket = \"/run/pinwatch/pinwatch.sock\"",
        &format!("socket = \"{}\"", socket.display()),
    )
}

#[test]
fn the_installed_deb_catches_a_forged_answer_and_purges_clean() {
    require_root();
    let dist = Dist::built();
    let deb = dist.deb();
    let _purge = Installed;
    let install = Command::new("apt-get")
        .args(["install", "--yes", "--quiet", path_str(&deb)])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "apt-get install {} failed:\n{}\n{}",
        deb.display(),
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );
    // The maintainer script made the user; without systemd as PID 1 it did
    // nothing else.
    run("getent", &["passwd", "pinwatch"]);
    let binary = Path::new("/usr/bin/pinwatch");
    assert_eq!(
        run("/usr/bin/pinwatch", &["--version"]).trim(),
        format!("pinwatch {}", dist.version)
    );

    {
        let lab = Lab::new();
        let forged: std::net::IpAddr = FORGED.parse().unwrap();
        let _dnsmasq = Dnsmasq::start(&lab, &DnsRecords::new().host(DB_HOST, forged));
        let installed = fs::read_to_string("/etc/pinwatch/pinwatch.toml").unwrap();
        let daemon = Daemon::start_with_file(binary, |dir, alerts, socket| {
            let path: PathBuf = dir.join("pinwatch.toml");
            fs::write(&path, adjust_installed(&installed, alerts, socket)).unwrap();
            path
        });
        let answer = dig(&lab.client, DNS_V4, DB_HOST, "A");
        assert_eq!(answer.addresses(), [forged], "{}", answer.raw);
        let alerts = daemon.alerts().wait_for(ALERT_TIMEOUT, |a| {
            str_field(a, "event.action") == "dns-answer-diverged"
                && field(a, "pinwatch.database").and_then(Value::as_str) == Some("orders")
        });
        let alert = alerts
            .iter()
            .find(|a| str_field(a, "event.action") == "dns-answer-diverged")
            .unwrap();
        assert_eq!(str_field(alert, "dns.question.name"), DB_HOST);
    }

    run("dpkg", &["--purge", "pinwatch"]);
    let status = Command::new("dpkg")
        .args(["--status", "pinwatch"])
        .output()
        .unwrap();
    assert!(
        !status.status.success(),
        "dpkg still knows pinwatch:\n{}",
        String::from_utf8_lossy(&status.stdout)
    );
    for path in PACKAGE_PATHS {
        assert!(
            !Path::new(path).exists(),
            "{path} is left after dpkg --purge"
        );
    }
    let leftovers: Vec<String> = fs::read_dir("/var/lib/dpkg/info")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pinwatch."))
        .collect();
    assert!(leftovers.is_empty(), "dpkg's records remain: {leftovers:?}");
    // Debian Policy keeps the system user (files may still belong to it).
    run("getent", &["passwd", "pinwatch"]);
}
