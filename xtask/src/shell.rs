use std::{
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

/// xtask runs from the workspace root whatever directory cargo was called in.
pub fn enter_workspace_root() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?;
    std::env::set_current_dir(root).with_context(|| format!("cannot enter {}", root.display()))
}

/// Runs a command with inherited output; an unsuccessful exit is an error.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("+ {program} {}", args.join(" "));
    wait_for(Command::new(program).args(args), program, args)
}

/// [`run`] in another working directory.
pub fn run_in(dir: &Path, program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("+ (cd {}) {program} {}", dir.display(), args.join(" "));
    wait_for(
        Command::new(program).args(args).current_dir(dir),
        program,
        args,
    )
}

fn wait_for(command: &mut Command, program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start {program}"))?;
    if !status.success() {
        bail!("{program} {} failed: {status}", args.join(" "));
    }
    Ok(())
}

/// The cargo that runs xtask, so the same toolchain builds everything.
pub fn cargo_program() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    run(&cargo_program(), args)
}

/// Runs cargo with stdout passed through line by line and also returned,
/// so callers can read test summaries; an unsuccessful exit is an error.
pub fn cargo_tee(args: &[&str]) -> anyhow::Result<String> {
    let (captured, status) = cargo_tee_status(args)?;
    if !status.success() {
        bail!("cargo {} failed: {status}", args.join(" "));
    }
    Ok(captured)
}

/// Like [`cargo_tee`], but a failing exit is returned rather than an
/// error, so a test run can go on and report every failure.
pub fn cargo_tee_status(args: &[&str]) -> anyhow::Result<(String, std::process::ExitStatus)> {
    use std::io::{BufRead, BufReader};
    let program = cargo_program();
    eprintln!("+ {program} {}", args.join(" "));
    let mut child = Command::new(&program)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let mut captured = String::new();
    for line in BufReader::new(child.stdout.take().context("no stdout")?).lines() {
        let line = line?;
        println!("{line}");
        captured.push_str(&line);
        captured.push('\n');
    }
    Ok((captured, child.wait()?))
}

/// Runs a command and returns its stdout; failures to start are errors,
/// the exit status is the caller's to judge through the output.
pub fn output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {program}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command in `dir` and returns its stdout; an unsuccessful exit is
/// an error that carries its stderr.
pub fn output_in(dir: &Path, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .with_context(|| format!("cannot start {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Replaces this process with the command (signals then reach it directly).
pub fn exec(program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("+ {program} {}", args.join(" "));
    let error = Command::new(program).args(args).exec();
    Err(error).with_context(|| format!("cannot run {program}"))
}
