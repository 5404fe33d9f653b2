//! `pinwatch learn` run as the operator runs it, with something done while
//! it watches.
use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use crate::daemon::pinwatch_bin;

/// What `pinwatch learn` says on stderr once its programs are attached.
const WATCHING_LINE: &str = "pinwatch learn: watching answers";
/// Attaching takes what the daemon's start takes.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One finished `pinwatch learn` run.
#[derive(Debug)]
pub struct LearnRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Kills the child unless it was waited for: a failing test leaves nothing
/// attached.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `pinwatch <args>` (args start with `learn`), waits until it watches,
/// runs `during`, then waits for it to end on its own within `deadline`.
pub fn learn(args: &[&str], deadline: Duration, during: impl FnOnce()) -> LearnRun {
    crate::require_root();
    let bin = pinwatch_bin();
    let mut cmd = Command::new(&bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let (ready_tx, ready_rx) = mpsc::channel();
    let stderr_pipe = child.stderr.take().expect("piped");
    let stdout_pipe = child.stdout.take().expect("piped");
    // Joined after the exit: each returns its whole stream.
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            if line.contains(WATCHING_LINE) {
                let _ = ready_tx.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let stdout = thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stdout_pipe).read_to_string(&mut text);
        text
    });
    let mut guard = ChildGuard(Some(child));
    if ready_rx.recv_timeout(READY_TIMEOUT).is_err() {
        drop(guard);
        panic!(
            "`{} {}` did not say `{WATCHING_LINE}` within {READY_TIMEOUT:?}\nstderr:\n{}",
            bin.display(),
            args.join(" "),
            stderr.join().unwrap_or_default()
        );
    }
    during();
    let child = guard.0.as_mut().expect("running");
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for pinwatch learn") {
            break status;
        }
        if Instant::now() >= end {
            drop(guard);
            panic!(
                "pinwatch learn did not end within {deadline:?}\nstderr:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    guard.0 = None;
    LearnRun {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// `pinwatch check-config -c <file>`: exit status and stdout+stderr.
pub fn check_config(file: &Path) -> (ExitStatus, String) {
    let out = Command::new(pinwatch_bin())
        .arg("check-config")
        .arg("-c")
        .arg(file)
        .output()
        .expect("run pinwatch check-config");
    (
        out.status,
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
