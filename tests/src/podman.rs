//! Real containers: podman on runc with its storage in a temporary
//! directory that goes with the guard. The identity tests run containers of
//! an image built locally `FROM scratch` around the host's static busybox
//! (no registry is needed or reached); the OCI test loads pinwatch's own
//! image and runs it in the foreground as the DaemonSet would.
use std::{
    net::IpAddr,
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::{
    cmd::{Captured, command, describe, output, run, spawn_piped},
    netns::NetNs,
};

/// The static busybox of Debian's busybox-static.
const BUSYBOX: &str = "/bin/busybox";
const IMAGE: &str = "localhost/pwt-busybox:latest";

/// A podman whose every container, image and storage file is removed on
/// drop, also when a test panics.
pub struct Podman {
    dir: tempfile::TempDir,
}

/// A running container (`sleep`ing until it is removed).
#[derive(Debug, Clone)]
pub struct Container {
    /// Full 64-hex id, as `podman run -d` prints it.
    pub id: String,
    pub name: String,
}

/// How a container is started.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec<'a> {
    /// `--network ns:/run/netns/NAME`: joins the lab namespace.
    pub netns: Option<&'a NetNs>,
    /// `--dns`: the nameserver of the container's resolv.conf.
    pub dns: Option<IpAddr>,
    /// `--annotation KEY=VALUE`, as Kubernetes' runtimes write them.
    pub annotations: &'a [(&'a str, &'a str)],
}

impl Podman {
    /// Storage in a new temporary directory.
    pub fn new() -> Podman {
        crate::require_root();
        assert!(
            Path::new("/usr/bin/podman").exists(),
            "the container tests need podman and runc: run `cargo xtask setup`"
        );
        let dir = tempfile::Builder::new()
            .prefix("pwt-podman-")
            .tempdir()
            .expect("temp dir for podman's storage");
        std::fs::create_dir_all(dir.path().join("tmp")).expect("podman's tmp dir");
        Podman { dir }
    }

    /// [`Podman::new`] with the busybox image built, for [`Podman::run`].
    pub fn with_busybox() -> Podman {
        let podman = Podman::new();
        assert!(
            Path::new(BUSYBOX).exists(),
            "the container tests need busybox-static: run `cargo xtask setup`"
        );
        let context = podman.dir.path().join("context");
        std::fs::create_dir_all(&context).expect("build context");
        std::fs::copy(BUSYBOX, context.join("busybox")).expect("copy busybox");
        std::fs::write(
            context.join("Containerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\n",
        )
        .expect("Containerfile");
        let context = context.to_string_lossy().into_owned();
        run(&mut podman.command(&[
            "build",
            "--quiet",
            "--network",
            "none",
            "-t",
            IMAGE,
            &context,
        ]));
        podman
    }

    /// `podman` with this guard's storage (vfs: any filesystem), on runc and
    /// cgroupfs (the hybrid cgroup layout), events in a file (no journald).
    pub fn command(&self, args: &[&str]) -> Command {
        let root = self.dir.path().join("root");
        let runroot = self.dir.path().join("runroot");
        let tmp = self.dir.path().join("tmp");
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

    /// Starts a busybox container named `name` that sleeps until removed
    /// (the guard was made [`Podman::with_busybox`]).
    pub fn run(&self, name: &str, spec: &ContainerSpec) -> Container {
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--pull",
            "never",
            "--name",
            name,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ]
        .map(str::to_owned)
        .into();
        match spec.netns {
            Some(ns) => args.extend(["--network".into(), format!("ns:/run/netns/{}", ns.name())]),
            None => args.extend(["--network".into(), "none".into()]),
        }
        if let Some(dns) = spec.dns {
            args.extend(["--dns".into(), dns.to_string()]);
        }
        for (key, value) in spec.annotations {
            args.extend(["--annotation".into(), format!("{key}={value}")]);
        }
        args.extend([IMAGE, BUSYBOX, "sleep", "600"].map(str::to_owned));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = run(&mut self.command(&args)).trim().to_owned();
        assert!(
            id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "podman run printed {id:?}, not a container id"
        );
        Container {
            id,
            name: name.to_owned(),
        }
    }

    /// `podman exec CONTAINER busybox ARGS…`, whatever its exit status.
    pub fn exec(&self, container: &Container, args: &[&str]) -> Output {
        let mut full = vec!["exec", container.name.as_str(), BUSYBOX];
        full.extend_from_slice(args);
        let mut cmd = self.command(&full);
        let out = output(&mut cmd);
        eprintln!(
            "`{}` ({}):\n{}{}",
            describe(&cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
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
    pub fn run_foreground(
        &self,
        name: &str,
        args: &[&str],
        ready_line: &'static str,
    ) -> Foreground<'_> {
        let mut cmd = self.command(&["run", "--name", name, "--log-driver", "k8s-file"]);
        cmd.args(args);
        let (mut child, line) = spawn_piped(&mut cmd, Stdio::null(), Stdio::piped());
        let stdout = Captured::default();
        let stderr = Captured::default();
        let (ready_tx, ready_rx) = mpsc::channel();
        stderr.drain(child.stderr.take().expect("piped"), move |l| {
            if l.contains(ready_line) {
                let _ = ready_tx.send(());
            }
        });
        stdout.drain(child.stdout.take().expect("piped"), |_| {});
        let mut container = Foreground {
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

impl Drop for Podman {
    fn drop(&mut self) {
        // Never panics: it runs while a failed test unwinds.
        for args in [
            &["rm", "--all", "--force", "--time", "0"][..],
            &["rmi", "--all", "--force"],
            &["system", "reset", "--force"],
        ] {
            let _ = self.command(args).output();
        }
    }
}

impl Default for Podman {
    fn default() -> Podman {
        Podman::new()
    }
}

/// A container running in the foreground; Drop stops and removes it.
pub struct Foreground<'a> {
    podman: &'a Podman,
    name: String,
    child: Option<Child>,
    stdout: Captured,
    stderr: Captured,
}

impl Foreground<'_> {
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

impl Drop for Foreground<'_> {
    fn drop(&mut self) {
        self.stop();
        let _ = self.podman.command(&["rm", "--force", &self.name]).output();
    }
}
