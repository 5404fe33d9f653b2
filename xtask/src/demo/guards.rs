//! What the demo creates, each as a guard that removes it on drop: on
//! success, on error and after Ctrl-C alike.
use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// Every namespace the demo creates is named `pwdemo-<xtask pid>-<role>`.
pub const NS_PREFIX: &str = "pwdemo-";

/// A network namespace with `lo` up. Drop kills what runs inside, deletes
/// it, and removes its `/etc/netns/<name>` directory (the resolv.conf
/// `ip netns exec` mounts for the programs inside).
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn create(role: &str) -> anyhow::Result<Netns> {
        let name = format!("{NS_PREFIX}{}-{role}", std::process::id());
        remove(&name);
        quiet("ip", &["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend(args);
        quiet("ip", &all)
    }

    /// `ip netns exec <ns> <program>`; add the arguments.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Makes the C library resolver of the programs inside ask `nameserver`.
    pub fn set_resolver(&self, nameserver: &str) -> anyhow::Result<()> {
        let dir = etc_netns(&self.name);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {nameserver}\n"),
        )
        .with_context(|| format!("writing {}/resolv.conf", dir.display()))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

fn etc_netns(name: &str) -> PathBuf {
    Path::new("/etc/netns").join(name)
}

/// Kills the processes inside `name`, deletes it and its /etc/netns entry.
/// Never fails: it runs in Drop.
fn remove(name: &str) {
    for _ in 0..50 {
        let pids = Command::new("ip")
            .args(["netns", "pids", name])
            .stderr(Stdio::null())
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        let pids: Vec<i32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("ip")
        .args(["netns", "delete", name])
        .stderr(Stdio::null())
        .status();
    let _ = fs::remove_dir_all(etc_netns(name));
}

/// Deletes `pwdemo-<pid>-*` namespaces whose demo process is gone (one
/// killed with SIGKILL, which no guard survives).
pub fn reap_stale() {
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let alive = rest
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            eprintln!("deleting network namespace {name} left by an earlier demo");
            remove(name);
        }
    }
}

/// A long-running child in its own process group (so Ctrl-C reaches only
/// the demo, which then stops everything in order), sent SIGTERM if the
/// demo dies without running its guards. Drop sends SIGTERM, waits up to
/// 15 s, then kills.
pub struct Process {
    name: &'static str,
    child: Option<Child>,
}

impl Process {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> anyhow::Result<Process> {
        cmd.stdin(Stdio::null()).process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Process {
            name,
            child: Some(child),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// An error naming the process when it has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child
            && let Some(status) = child.try_wait()?
        {
            bail!("{} exited early ({status})", self.name);
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after 15 s; returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill has no memory-safety preconditions; the child is not
        // reaped yet, so its pid cannot have been reused.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "{} did not stop within 15 s of SIGTERM; killing it",
            self.name
        );
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn create() -> anyhow::Result<TempDir> {
        let path = std::env::temp_dir().join(format!("pinwatch-demo-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs a command to completion; its output only shows when it fails.
fn quiet(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot start {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
