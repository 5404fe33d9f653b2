//! The release artifacts of `cargo xtask dist`, built once per test binary.
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Instant,
};

use crate::cmd::run;

/// The workspace root (`cargo xtask` runs there).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// target/dist after `cargo xtask dist`, and the version the names carry.
#[derive(Debug, Clone)]
pub struct Dist {
    pub dir: PathBuf,
    pub version: String,
}

impl Dist {
    /// Runs `cargo xtask dist` the first time it is called in this process.
    pub fn built() -> &'static Dist {
        static DIST: OnceLock<Dist> = OnceLock::new();
        DIST.get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let started = Instant::now();
            run(Command::new(&cargo)
                .args(["xtask", "dist"])
                .current_dir(workspace_root()));
            eprintln!("cargo xtask dist took {:?}", started.elapsed());
            let (version, target) = metadata();
            Dist {
                dir: target.join("dist"),
                version,
            }
        })
    }

    /// pinwatch's version, as `cargo metadata` says.
    pub fn version_from_metadata() -> String {
        metadata().0
    }

    pub fn tarball(&self) -> PathBuf {
        self.dir.join(format!(
            "pinwatch-{}-x86_64-unknown-linux-musl.tar.gz",
            self.version
        ))
    }

    pub fn deb(&self) -> PathBuf {
        self.dir
            .join(format!("pinwatch_{}-1_amd64.deb", self.version))
    }

    pub fn rpm(&self) -> PathBuf {
        self.dir
            .join(format!("pinwatch-{}-1.x86_64.rpm", self.version))
    }

    pub fn oci(&self) -> PathBuf {
        self.dir.join(format!("pinwatch-{}-oci.tar", self.version))
    }
}

/// pinwatch's version and the target directory, from `cargo metadata`.
fn metadata() -> (String, PathBuf) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let metadata = run(Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root()));
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).expect("cargo metadata prints JSON");
    let version = metadata["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "pinwatch"))
        .and_then(|p| p["version"].as_str())
        .expect("cargo metadata names pinwatch's version")
        .to_owned();
    let target = metadata["target_directory"]
        .as_str()
        .expect("cargo metadata names the target directory");
    (version, PathBuf::from(target))
}
