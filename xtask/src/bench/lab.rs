//! What the benchmarks run in: a network namespace of their own (so they may
//! bind port 53 on its loopback) and the release daemon as a guard.
use std::{
    fs::File,
    io::{BufRead, BufReader},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use anyhow::{Context, bail};

pub const PINWATCH: &str = "target/release/pinwatch";

/// `ip netns add pwb-<pid>-<name>` with `lo` up; Drop kills what runs in it
/// and deletes it.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(short: &str) -> anyhow::Result<Netns> {
        let name = format!("pwb-{}-{short}", std::process::id());
        quiet("ip", &["netns", "delete", &name]);
        run("ip", &["netns", "add", &name])?;
        let netns = Netns { name };
        run("ip", &["-n", &netns.name, "link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// `ip netns exec <ns> <program>`, to add arguments to.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `work` on a thread that entered this namespace: sockets it makes
    /// live there (and stay there when used from other threads).
    pub fn spawn<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<thread::JoinHandle<T>> {
        let file = File::open(format!("/run/netns/{}", self.name))
            .with_context(|| format!("cannot open namespace {}", self.name))?;
        let (entered, result) = mpsc::channel();
        let handle = thread::spawn(move || {
            // SAFETY: setns on an fd we own; it changes only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            let _ = entered.send(if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            });
            if rc != 0 {
                // The caller returns the error; the closure never runs here.
                loop {
                    thread::park();
                }
            }
            work()
        });
        result.recv()?.context("setns")?;
        Ok(handle)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let pids = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["netns", "pids", &self.name])
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default(),
        )
        .into_owned();
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        quiet("ip", &["netns", "delete", &self.name]);
    }
}

/// `pinwatch run` (release) on a configuration of the benchmark's own,
/// alerts to a file; started and ready. Drop stops it with SIGTERM.
pub struct Daemon {
    child: Child,
    pub dir: PathBuf,
}

impl Daemon {
    /// `databases` is the `[[database]]` part of the configuration.
    pub fn start(databases: &str) -> anyhow::Result<Daemon> {
        let dir = std::env::temp_dir().join(format!("pwb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let config = format!(
            "{databases}\n[alerts]\nsink = \"file\"\npath = \"{}\"\n\n[control]\nsocket = \"{}\"\n",
            dir.join("alerts.ndjson").display(),
            dir.join("pinwatch.sock").display(),
        );
        std::fs::write(dir.join("pinwatch.toml"), config)?;
        let mut child = Command::new(PINWATCH)
            .args(["run", "-c"])
            .arg(dir.join("pinwatch.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {PINWATCH}"))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (ready, wait) = mpsc::channel();
        thread::spawn(move || {
            let mut log = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("pinwatch ready") {
                    let _ = ready.send(Ok(()));
                }
                log.push_str(&line);
                log.push('\n');
            }
            let _ = ready.send(Err(log));
        });
        let daemon = Daemon { child, dir };
        match wait.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => Ok(daemon),
            Ok(Err(log)) => bail!("pinwatch exited before it was ready:\n{log}"),
            Err(_) => bail!("pinwatch was not ready within 30 s"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends the daemon with `signal` and waits for it, leaving its pins
    /// (SIGUSR2: a handover; SIGKILL: a crash) and its directory, for the
    /// next daemon of the same configuration to adopt.
    pub fn end_with(mut self, signal: i32) -> anyhow::Result<()> {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        self.child.wait()?;
        // The next daemon reuses the directory; nothing is left to stop.
        std::mem::forget(self);
        Ok(())
    }

    pub fn alerts(&self) -> PathBuf {
        self.dir.join("alerts.ndjson")
    }

    /// `pinwatch status --json` (its exit code says healthy or not; the
    /// benchmarks read the counters).
    pub fn status(&self) -> anyhow::Result<serde_json::Value> {
        let out = Command::new(PINWATCH)
            .args(["status", "--json", "--socket"])
            .arg(self.dir.join("pinwatch.sock"))
            .output()?;
        serde_json::from_slice(&out.stdout).context("pinwatch status --json printed no JSON")
    }

    /// `counters.<name>` of the status.
    pub fn counter(&self, name: &str) -> anyhow::Result<u64> {
        self.status()?["counters"][name]
            .as_u64()
            .with_context(|| format!("status has no counters.{name}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub const TRIVIAL_HOOKS: &str = "target/release/examples/trivial_hooks";

/// The trivial cgroup_skb programs held on the cgroup root's egress and
/// ingress hooks (`monitor/examples/trivial_hooks.rs`): the floor any
/// design seeing the host's packets there starts from. Drop detaches them.
pub struct TrivialHooks(Child);

impl TrivialHooks {
    pub fn attach() -> anyhow::Result<TrivialHooks> {
        let mut child = Command::new(TRIVIAL_HOOKS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {TRIVIAL_HOOKS}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let hooks = TrivialHooks(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "attached" {
            bail!("{TRIVIAL_HOOKS} did not attach its programs (it printed {line:?})");
        }
        Ok(hooks)
    }
}

impl Drop for TrivialHooks {
    fn drop(&mut self) {
        // Closing its stdin ends it; its links go with its descriptors.
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

pub fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program).args(args).output()?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn quiet(program: &str, args: &[&str]) {
    let _ = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A file the caller removes (inputs of dnsperf, captures).
pub fn scratch(name: &str) -> PathBuf {
    Path::new(&std::env::temp_dir()).join(format!("pwb-{}-{name}", std::process::id()))
}
