//! `pinwatch status` against the daemon under test, run as root or as an
//! unprivileged user, and a throwaway group for the control socket.
use std::{fmt, path::Path, process::Command};

use serde_json::Value;

use crate::{
    cmd::{command, describe, output, run},
    daemon::{Daemon, pinwatch_bin},
};

/// The unprivileged user status is tried as: `nobody`.
pub const NOBODY: u32 = 65534;

/// Who runs the client.
#[derive(Debug, Clone, Copy)]
pub enum StatusUser {
    Root,
    /// uid and gid 65534, no supplementary groups.
    Nobody,
    /// `nobody` with this gid as its only supplementary group.
    NobodyInGroup(u32),
}

/// One run of `pinwatch status`.
#[derive(Debug, Clone)]
pub struct StatusRun {
    pub command: String,
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl StatusRun {
    /// stdout parsed as one JSON object; panics with the run otherwise.
    pub fn json(&self) -> Value {
        let value: Value = serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("status printed no JSON object ({e}):\n{self}"));
        assert!(value.is_object(), "status printed no JSON object:\n{self}");
        value
    }
}

impl fmt::Display for StatusRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited {:?}\nstdout:\n{}\nstderr:\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

/// `pinwatch status [--json] --socket SOCKET`, as `user`.
pub fn status(socket: &Path, json: bool, user: StatusUser) -> StatusRun {
    let bin = pinwatch_bin();
    let mut cmd = match user {
        StatusUser::Root => Command::new(&bin),
        StatusUser::Nobody | StatusUser::NobodyInGroup(_) => {
            let groups = match user {
                StatusUser::NobodyInGroup(gid) => format!("--groups={gid}"),
                _ => "--clear-groups".to_owned(),
            };
            let mut cmd = command(
                "setpriv",
                &[
                    &format!("--reuid={NOBODY}"),
                    &format!("--regid={NOBODY}"),
                    &groups,
                ],
            );
            cmd.arg(&bin);
            cmd
        }
    };
    cmd.arg("status");
    if json {
        cmd.arg("--json");
    }
    cmd.arg("--socket").arg(socket);
    let out = output(&mut cmd);
    StatusRun {
        command: describe(&cmd),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Daemon {
    /// `pinwatch status --json` on this daemon's socket, as root.
    pub fn status(&self) -> StatusRun {
        status(self.socket_path(), true, StatusUser::Root)
    }

    /// This daemon's status report; panics unless status printed one.
    pub fn status_json(&self) -> Value {
        let run = self.status();
        assert!(
            matches!(run.code, Some(0 | 1)),
            "status should reach the daemon:\n{run}\n{}",
            self.dump()
        );
        run.json()
    }
}

/// A system group `pwt<pid>` made with groupadd; groupdel on drop.
pub struct TestGroup {
    pub name: String,
    pub gid: u32,
}

impl TestGroup {
    pub fn new() -> TestGroup {
        crate::require_root();
        let name = format!("pwt{}", std::process::id());
        // A leftover of an earlier process that had our pid.
        let _ = output(&mut command("groupdel", &[&name]));
        run(&mut command("groupadd", &["--system", &name]));
        let entry = run(&mut command("getent", &["group", &name]));
        let gid = entry
            .split(':')
            .nth(2)
            .and_then(|g| g.trim().parse().ok())
            .unwrap_or_else(|| panic!("no gid in `getent group {name}`: {entry:?}"));
        TestGroup { name, gid }
    }
}

impl Default for TestGroup {
    fn default() -> Self {
        TestGroup::new()
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let out = output(&mut command("groupdel", &[&self.name]));
        if !out.status.success() {
            eprintln!(
                "cannot remove test group {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
