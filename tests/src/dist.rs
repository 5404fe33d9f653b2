//! The release artifacts of `cargo xtask dist`, built once per test binary,
//! and the image they hold run under podman as the DaemonSet runs it.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{OnceLock, mpsc},
    time::{Duration, Instant},
};

use crate::cmd::{Captured, command, describe, run};

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

/// Global flags for podman on these machines: a storage of the test's own
/// (vfs, any filesystem), runc, cgroupfs (the hybrid cgroup layout), and
/// file-based events and logs (no journald needed).
pub struct Podman {
    root: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        crate::require_root();
        Podman {
            root: tempfile::Builder::new()
                .prefix("pwt-podman-")
                .tempdir()
                .expect("a temp dir for podman's storage"),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let root = self.root.path().join("root");
        let runroot = self.root.path().join("run");
        let tmp = self.root.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("podman's tmp dir");
        let mut cmd = command(
            "podman",
            &[
                "--storage-driver",
                "vfs",
                "--root",
                &root.to_string_lossy(),
                "--runroot",
                &runroot.to_string_lossy(),
                "--tmpdir",
                &tmp.to_string_lossy(),
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ],
        );
        cmd.args(args);
        cmd
    }

    /// `podman load` of an OCI archive; returns the image's name.
    pub fn load(&self, archive: &Path) -> String {
        let out = run(&mut self.command(&["load", "--input", &archive.to_string_lossy()]));
        out.lines()
            .find_map(|l| l.strip_prefix("Loaded image: "))
            .unwrap_or_else(|| panic!("podman load named no image:\n{out}"))
            .trim()
            .to_owned()
    }

    /// `podman run --name NAME ARGS…` in the foreground, its stdout and
    /// stderr captured; waits until stderr has `ready_line`.
    pub fn run(&self, name: &str, args: &[&str], ready_line: &'static str) -> Container<'_> {
        let mut cmd = self.command(&["run", "--name", name, "--log-driver", "k8s-file"]);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let line = describe(&cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
        let stdout = Captured::default();
        let stderr = Captured::default();
        let (ready_tx, ready_rx) = mpsc::channel();
        stderr.drain(child.stderr.take().expect("piped"), move |l| {
            if l.contains(ready_line) {
                let _ = ready_tx.send(());
            }
        });
        stdout.drain(child.stdout.take().expect("piped"), |_| {});
        let mut container = Container {
            podman: self,
            name: name.to_owned(),
            child: Some(child),
            stdout,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while ready_rx.recv_timeout(Duration::from_millis(100)).is_err() {
            if let Some(status) = container
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                container.child = None;
                panic!(
                    "`{line}` exited ({status}) before `{ready_line}`\nstderr:\n{}",
                    container.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no `{ready_line}` from `{line}` within 60 s\nstderr:\n{}",
                container.stderr()
            );
        }
        container
    }
}

impl Default for Podman {
    fn default() -> Podman {
        Podman::new()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Containers first; the storage is then a plain directory tree.
        let _ = self.command(&["rm", "--all", "--force"]).output();
        let _ = self.command(&["rmi", "--all", "--force"]).output();
    }
}

/// A running container; Drop stops and removes it.
pub struct Container<'a> {
    podman: &'a Podman,
    name: String,
    child: Option<Child>,
    stdout: Captured,
    stderr: Captured,
}

impl Container<'_> {
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// `podman stop` (SIGTERM, then SIGKILL after 10 s) and the exit code
    /// `podman run` passed on.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = self
            .podman
            .command(&["stop", "--time", "10", &self.name])
            .output();
        child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        self.stop();
        let _ = self.podman.command(&["rm", "--force", &self.name]).output();
    }
}
