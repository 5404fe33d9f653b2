//! `dig` run inside a namespace, its answer section parsed.
use std::{
    io::Write,
    net::IpAddr,
    process::{Child, ChildStdin, Stdio},
    time::{Duration, Instant},
};

use crate::{
    cmd::{Captured, describe, output, spawn_piped},
    netns::NetNs,
};

/// One resource record of the answer section, as dig printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Owner name as printed, with its trailing dot (`db.lab.test.`).
    pub name: String,
    pub ttl: u32,
    /// `A`, `AAAA`, `CNAME`, ...
    pub rtype: String,
    /// Record data as printed (`203.0.113.66`, `real.lab.test.`).
    pub data: String,
}

#[derive(Debug, Clone)]
pub struct DigResult {
    /// Response code from the header: `NOERROR`, `NXDOMAIN`, `REFUSED`, ...
    pub status: String,
    pub answers: Vec<Answer>,
    /// dig's whole output, for messages.
    pub raw: String,
}

impl DigResult {
    /// The A and AAAA addresses of the answer section.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.answers
            .iter()
            .filter(|a| a.rtype == "A" || a.rtype == "AAAA")
            .filter_map(|a| a.data.parse().ok())
            .collect()
    }
}

/// What dig prints (header comments and the answer section, which [`parse`]
/// reads) and how long it waits: one try, short, so a lost answer fails fast.
const OUTPUT: [&str; 5] = ["+noall", "+comments", "+answer", "+time=2", "+tries=1"];

/// `dig @server name qtype` from namespace `ns`; panics when no answer comes.
pub fn dig(ns: &NetNs, server: impl Into<IpAddr>, name: &str, qtype: &str) -> DigResult {
    try_dig(ns, server, name, qtype).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`dig()`], but a missing or unparsable response is an `Err`.
pub fn try_dig(
    ns: &NetNs,
    server: impl Into<IpAddr>,
    name: &str,
    qtype: &str,
) -> Result<DigResult, String> {
    let server = server.into();
    let mut cmd = ns.command("dig");
    cmd.args([&format!("@{server}"), name, qtype]).args(OUTPUT);
    let out = output(&mut cmd);
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}{}",
            describe(&cmd),
            out.status,
            raw,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse(&raw).ok_or_else(|| {
        format!(
            "`{}`: no status line in dig's output:\n{raw}",
            describe(&cmd)
        )
    })
}

/// A dig that stays alive after its answer until dropped (`dig -f -`,
/// queries read from a pipe kept open): the daemon reads the asking
/// process's resolv.conf from `/proc`, which a dig that exited at once may
/// no longer have when a loaded machine drains the ring a little late.
pub struct LingeringDig {
    child: Child,
    queries: Option<ChildStdin>,
    output: Captured,
    command: String,
}

impl LingeringDig {
    /// Asks `server` for `name qtype` from namespace `ns` and waits for the
    /// answer; panics naming the command when none comes.
    pub fn ask(ns: &NetNs, server: impl Into<IpAddr>, name: &str, qtype: &str) -> LingeringDig {
        let mut cmd = ns.command("dig");
        cmd.args([&format!("@{}", server.into()), "-f", "-"])
            .args(OUTPUT);
        let (mut child, command) = spawn_piped(&mut cmd, Stdio::piped(), Stdio::piped());
        let output = Captured::default();
        if let Some(stdout) = child.stdout.take() {
            output.drain(stdout, |_| {});
        }
        if let Some(stderr) = child.stderr.take() {
            output.drain(stderr, |_| {});
        }
        let mut dig = LingeringDig {
            queries: child.stdin.take(),
            child,
            output,
            command,
        };
        if let Some(queries) = &mut dig.queries {
            writeln!(queries, "{name} {qtype}")
                .unwrap_or_else(|e| panic!("`{}`: writing the query: {e}", dig.command));
        }
        dig.wait_for_answer();
        dig
    }

    /// dig prints its answer section's records, then a blank line.
    fn wait_for_answer(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.output.text();
            if let Some(answer) = parse(&text)
                && !answer.answers.is_empty()
                && text.ends_with("\n\n")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{}`: no answer within 5 s:\n{text}",
                self.command
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What dig printed so far, parsed.
    pub fn answer(&self) -> DigResult {
        let text = self.output.text();
        parse(&text).unwrap_or_else(|| panic!("`{}`: no status line:\n{text}", self.command))
    }
}

impl Drop for LingeringDig {
    fn drop(&mut self) {
        // End of its queries: dig exits.
        drop(self.queries.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `dig +noall +comments +answer` output.
fn parse(raw: &str) -> Option<DigResult> {
    let mut status = None;
    let mut answers = Vec::new();
    for line in raw.lines() {
        let line = line.trim();
        if let Some(rest) = line.split_once("status: ").map(|(_, rest)| rest) {
            status = rest.split(',').next().map(|s| s.trim().to_owned());
            continue;
        }
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        // name ttl class type data...
        let mut parts = line.split_whitespace();
        let (Some(name), Some(ttl), Some(_class), Some(rtype)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(ttl) = ttl.parse() else { continue };
        answers.push(Answer {
            name: name.to_owned(),
            ttl,
            rtype: rtype.to_owned(),
            data: parts.collect::<Vec<_>>().join(" "),
        });
    }
    Some(DigResult {
        status: status?,
        answers,
        raw: raw.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers_and_status() {
        let raw = "\
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4242
;; flags: qr aa rd ra; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 1

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
;; QUESTION SECTION:
;alias.lab.test.\t\t\tIN\tA

;; ANSWER SECTION:
alias.lab.test.\t300\tIN\tCNAME\treal.lab.test.
real.lab.test.\t300\tIN\tA\t203.0.113.77
";
        let r = parse(raw).unwrap();
        assert_eq!(r.status, "NOERROR");
        assert_eq!(r.answers.len(), 2);
        assert_eq!(r.answers[0].rtype, "CNAME");
        assert_eq!(r.answers[0].data, "real.lab.test.");
        assert_eq!(
            r.addresses(),
            vec!["203.0.113.77".parse::<IpAddr>().unwrap()]
        );
    }
}
