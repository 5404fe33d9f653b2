//! Running helper commands with failures that say what ran and what it said.
use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex},
    thread,
};

/// The command line, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Runs `cmd` to completion; panics with its output unless it exits 0.
pub(crate) fn run(cmd: &mut Command) -> String {
    let output = output(cmd);
    if !output.status.success() {
        panic!(
            "`{}` failed ({}):\nstdout: {}\nstderr: {}",
            describe(cmd),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `cmd` to completion whatever its exit status; panics only when it
/// cannot be started.
pub(crate) fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", describe(cmd)))
}

/// Shorthand for `Command::new(program).args(args)`.
pub(crate) fn command(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// Starts `cmd` with its stdout piped; panics naming the command when it
/// cannot start. Returns the child and the command line, for messages.
pub(crate) fn spawn_piped(cmd: &mut Command, stdin: Stdio, stderr: Stdio) -> (Child, String) {
    cmd.stdin(stdin).stdout(Stdio::piped()).stderr(stderr);
    let line = describe(cmd);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    (child, line)
}

/// Starts a server in the background, its stdout and stderr drained into
/// one log (shown when a test fails); panics naming the command when it
/// cannot start.
pub(crate) fn spawn_logged(cmd: &mut Command) -> (Child, Captured) {
    let (mut child, _) = spawn_piped(cmd, Stdio::null(), Stdio::piped());
    let log = Captured::default();
    if let Some(stdout) = child.stdout.take() {
        log.drain(stdout, |_| {});
    }
    if let Some(stderr) = child.stderr.take() {
        log.drain(stderr, |_| {});
    }
    (child, log)
}

/// A buffer that a background thread fills with a child's output, line by
/// line, so the pipe never fills up and the text can be shown on failure.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<String>>);

impl Captured {
    /// Drains `pipe` on a thread; `on_line` sees each line as it arrives.
    pub(crate) fn drain(
        &self,
        pipe: impl Read + Send + 'static,
        mut on_line: impl FnMut(&str) + Send + 'static,
    ) {
        let buffer = self.0.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        buffer
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push_str(&text);
                        on_line(&text);
                    }
                }
            }
        });
    }

    pub(crate) fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
