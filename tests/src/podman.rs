//! Real containers for the identity tests: podman on runc, with its storage
//! in a temporary directory that goes with the guard, and an image built
//! locally `FROM scratch` around the host's static busybox (no registry is
//! needed or reached).
use std::{
    net::IpAddr,
    path::Path,
    process::{Command, Output},
};

use crate::{
    cmd::{describe, output, run},
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
    /// Storage in a new temporary directory, and the busybox image built.
    pub fn new() -> Podman {
        crate::require_root();
        assert!(
            Path::new(BUSYBOX).exists() && Path::new("/usr/bin/podman").exists(),
            "the container tests need podman, runc and busybox-static: run `cargo xtask setup`"
        );
        let dir = tempfile::Builder::new()
            .prefix("pwt-podman-")
            .tempdir()
            .expect("temp dir for podman's storage");
        let podman = Podman { dir };
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

    /// `podman` with this guard's storage, on runc and cgroupfs.
    fn command(&self, args: &[&str]) -> Command {
        let root = self.dir.path().join("root");
        let runroot = self.dir.path().join("runroot");
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(root)
            .arg("--runroot")
            .arg(runroot)
            .args([
                "--storage-driver",
                "vfs",
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
            ])
            .args(args);
        cmd
    }

    /// Starts a container named `name` that sleeps until removed.
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
