//! `cargo xtask dist`: the release artifacts in target/dist/, all from one
//! static musl build of pinwatch (the eBPF object embedded by build.rs):
//! the tarball, the .deb (cargo-deb), the .rpm (cargo-generate-rpm), the OCI
//! image archive (buildah) and SHA256SUMS. Version and names come from
//! `cargo metadata`.
mod oci;

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};

use crate::shell;

pub const TARGET: &str = "x86_64-unknown-linux-musl";
/// The one build every artifact comes from (`cargo xtask vmtest` boots it
/// too).
pub const BUILD: [&str; 7] = [
    "build",
    "--release",
    "--locked",
    "--package",
    "pinwatch",
    "--target",
    TARGET,
];
/// Where the unit in dist/ expects the binary (a tarball install), and where
/// the packages and the image put it.
const TARBALL_BIN: &str = "/usr/local/bin/pinwatch";
const PACKAGE_BIN: &str = "/usr/bin/pinwatch";

/// What the artifacts are named after.
pub struct Release {
    pub version: String,
    pub target_dir: PathBuf,
}

impl Release {
    /// pinwatch's version and the target directory, from `cargo metadata`.
    pub fn from_metadata() -> anyhow::Result<Release> {
        let text = shell::output(
            &shell::cargo_program(),
            &["metadata", "--format-version", "1", "--no-deps"],
        )?;
        let metadata: serde_json::Value =
            serde_json::from_str(&text).context("cargo metadata printed no JSON")?;
        let version = metadata["packages"]
            .as_array()
            .and_then(|packages| packages.iter().find(|p| p["name"] == "pinwatch"))
            .and_then(|p| p["version"].as_str())
            .context("cargo metadata lists no pinwatch package with a version")?;
        let target_dir = metadata["target_directory"]
            .as_str()
            .context("cargo metadata has no target_directory")?;
        Ok(Release {
            version: version.to_owned(),
            target_dir: PathBuf::from(target_dir),
        })
    }

    pub fn dist_dir(&self) -> PathBuf {
        self.target_dir.join("dist")
    }

    pub fn tarball(&self) -> String {
        format!("pinwatch-{}-{TARGET}.tar.gz", self.version)
    }

    pub fn deb(&self) -> String {
        format!("pinwatch_{}-1_amd64.deb", self.version)
    }

    pub fn rpm(&self) -> String {
        format!("pinwatch-{}-1.x86_64.rpm", self.version)
    }

    pub fn oci(&self) -> String {
        format!("pinwatch-{}-oci.tar", self.version)
    }

    /// The musl target's release directory: cargo-deb and
    /// cargo-generate-rpm read `target/release/` in the manifest as this.
    fn release_dir(&self) -> PathBuf {
        self.target_dir.join(TARGET).join("release")
    }

    /// What the packages hold, staged (see `[package.metadata.deb]`).
    fn package_dir(&self) -> PathBuf {
        self.release_dir().join("package")
    }
}

pub fn run() -> anyhow::Result<()> {
    let release = Release::from_metadata()?;
    shell::cargo(&BUILD)?;
    let dist = release.dist_dir();
    if dist.exists() {
        fs::remove_dir_all(&dist).with_context(|| format!("cannot empty {}", dist.display()))?;
    }
    fs::create_dir_all(&dist)?;
    stage(&release)?;
    tarball(&release)?;
    packages(&release)?;
    oci::build(&release)?;
    checksums(&release)?;
    println!("artifacts in {}:", dist.display());
    for name in artifacts(&release) {
        println!("  {name}");
    }
    Ok(())
}

fn artifacts(release: &Release) -> [String; 4] {
    [
        release.tarball(),
        release.deb(),
        release.rpm(),
        release.oci(),
    ]
}

/// The stripped binary and the files beside it, as the packages want them.
fn stage(release: &Release) -> anyhow::Result<()> {
    let dir = release.package_dir();
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    let binary = release.release_dir().join("pinwatch");
    let stripped = dir.join("pinwatch");
    shell::run(
        "strip",
        &[
            "--strip-all",
            "-o",
            path_str(&stripped)?,
            path_str(&binary)?,
        ],
    )?;
    let unit = fs::read_to_string("dist/pinwatch.service")?;
    fs::write(dir.join("pinwatch.service"), package_unit(&unit)?)?;
    for (from, to) in [
        ("dist/pinwatch.sysusers", "pinwatch.sysusers"),
        ("config/pinwatch.toml", "pinwatch.toml"),
        ("README.md", "README.md"),
        ("LICENSE", "LICENSE"),
    ] {
        fs::copy(from, dir.join(to)).with_context(|| format!("cannot stage {from}"))?;
    }
    let changelog_path = dir.join("changelog.Debian");
    fs::write(&changelog_path, changelog(&release.version)?)?;
    // -n: no name or time in the header, as Debian's tools compress.
    shell::run("gzip", &["-9", "-n", path_str(&changelog_path)?])
}

/// The unit of dist/ with ExecStart on the packages' binary: one unit file,
/// adjusted, rather than two kept in step by hand.
fn package_unit(unit: &str) -> anyhow::Result<String> {
    let exec = format!("ExecStart={TARBALL_BIN} ");
    if unit.matches(&exec).count() != 1 {
        bail!("dist/pinwatch.service has no single `{exec}` line to adjust");
    }
    Ok(unit.replace(&exec, &format!("ExecStart={PACKAGE_BIN} ")))
}

/// A one-entry Debian changelog for this version (lintian wants one).
fn changelog(version: &str) -> anyhow::Result<String> {
    let date = shell::output("date", &["-R", "-u"])?;
    Ok(format!(
        "pinwatch ({version}-1) unstable; urgency=medium\n\n  * Release {version}.\n\n -- pinwatch maintainers <maintainers@users.noreply.r-seed-fe3e3be2.example>  {}\n",
        date.trim()
    ))
}

fn tarball(release: &Release) -> anyhow::Result<()> {
    let name = release.tarball();
    let root = name.trim_end_matches(".tar.gz").to_owned();
    let work = release.release_dir().join("tarball");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    let top = work.join(&root);
    fs::create_dir_all(&top)?;
    let package = release.package_dir();
    for file in [
        "pinwatch",
        "pinwatch.sysusers",
        "pinwatch.toml",
        "README.md",
        "LICENSE",
    ] {
        fs::copy(package.join(file), top.join(file))?;
    }
    // The tarball's unit is dist/'s as it is: README installs the binary
    // from the tarball to /usr/local/bin.
    fs::copy("dist/pinwatch.service", top.join("pinwatch.service"))?;
    let output = release.dist_dir().join(&name);
    shell::run(
        "tar",
        &[
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
            path_str(&work)?,
            "-czf",
            path_str(&output)?,
            &root,
        ],
    )
}

fn packages(release: &Release) -> anyhow::Result<()> {
    let dist = release.dist_dir();
    let deb = dist.join(release.deb());
    shell::cargo(&[
        "deb",
        "--package",
        "pinwatch",
        "--target",
        TARGET,
        "--no-build",
        "--no-strip",
        "--output",
        path_str(&deb)?,
    ])
    .context("cargo-deb (cargo xtask setup installs it)")?;
    let rpm = dist.join(release.rpm());
    shell::cargo(&[
        "generate-rpm",
        "--package",
        "monitor",
        "--target",
        TARGET,
        "--output",
        path_str(&rpm)?,
    ])
    .context("cargo-generate-rpm (cargo xtask setup installs it)")
}

/// SHA256SUMS in `sha256sum`'s format, so `sha256sum -c` verifies it.
fn checksums(release: &Release) -> anyhow::Result<()> {
    let dist = release.dist_dir();
    let names = artifacts(release);
    let args: Vec<&str> = names.iter().map(String::as_str).collect();
    let sums = shell::output_in(&dist, "sha256sum", &args)?;
    if sums.lines().count() != names.len() {
        bail!("sha256sum did not sum every artifact:\n{sums}");
    }
    fs::write(dist.join("SHA256SUMS"), sums)?;
    Ok(())
}

pub fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("non-UTF-8 path {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_package_unit_runs_the_packaged_binary() {
        let unit = std::fs::read_to_string("../dist/pinwatch.service").unwrap();
        let adjusted = super::package_unit(&unit).unwrap();
        assert!(
            adjusted.contains("\nExecStart=/usr/bin/pinwatch run -c /etc/pinwatch/pinwatch.toml\n")
        );
        assert!(!adjusted.contains("/usr/local/bin"));
        assert_eq!(adjusted.lines().count(), unit.lines().count());
        assert!(super::package_unit("[Service]\nExecStart=/opt/pinwatch run\n").is_err());
    }
}
