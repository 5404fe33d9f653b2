//! dnsmasq as the lab's resolver, in the foreground in the dns namespace.
use std::{net::IpAddr, process::Child, time::Duration};

use crate::{
    cmd::{Captured, describe, spawn_logged},
    dig::try_dig,
    lab::{DNS_V4, DNS_V6, Lab},
    poll,
};

/// The name the harness asks to learn that dnsmasq answers; it is in no
/// pinwatch configuration.
const READY_NAME: &str = "ready.harness.test";

/// TTL of dnsmasq's local answers (its default, 0, would make every answer
/// expire at once).
const LOCAL_TTL: u32 = 300;

/// The records dnsmasq serves, as its command-line options.
#[derive(Debug, Clone, Default)]
pub struct DnsRecords {
    args: Vec<String>,
}

impl DnsRecords {
    pub fn new() -> DnsRecords {
        DnsRecords::default()
    }

    /// `--host-record=name,ip`: an A or AAAA record (repeat for more).
    pub fn host(mut self, name: &str, ip: impl Into<IpAddr>) -> DnsRecords {
        self.args
            .push(format!("--host-record={name},{}", ip.into()));
        self
    }

    /// `--cname=alias,target`.
    pub fn cname(mut self, alias: &str, target: &str) -> DnsRecords {
        self.args.push(format!("--cname={alias},{target}"));
        self
    }

    /// `--address=/name/ip`: the name and every name below it.
    pub fn address(mut self, name: &str, ip: impl Into<IpAddr>) -> DnsRecords {
        self.args.push(format!("--address=/{name}/{}", ip.into()));
        self
    }
}

/// dnsmasq listening on 198.51.100.53 and 2001:db8:51::53 in the lab's dns
/// namespace. Drop kills it.
pub struct Dnsmasq {
    child: Child,
    log: Captured,
}

impl Dnsmasq {
    /// Starts dnsmasq and waits (10 s at most) until it answers over IPv4
    /// and IPv6 from the client namespace.
    pub fn start(lab: &Lab, records: &DnsRecords) -> Dnsmasq {
        let mut cmd = lab.dns.command("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--bind-interfaces",
            &format!("--listen-address={DNS_V4}"),
            &format!("--listen-address={DNS_V6}"),
            "--user=root",
            "--group=root",
            "--log-facility=-",
            "--log-queries",
            &format!("--local-ttl={LOCAL_TTL}"),
            &format!("--host-record={READY_NAME},{DNS_V4}"),
        ]);
        cmd.args(&records.args);
        let line = describe(&cmd);
        let (child, log) = spawn_logged(&mut cmd);
        let mut dnsmasq = Dnsmasq { child, log };

        let mut last_error = String::new();
        let ready = poll(Duration::from_secs(10), || {
            if let Ok(Some(status)) = dnsmasq.child.try_wait() {
                panic!(
                    "dnsmasq exited early ({status}): `{line}`\n{}",
                    dnsmasq.log.text()
                );
            }
            let answered = [IpAddr::V4(DNS_V4), IpAddr::V6(DNS_V6)]
                .into_iter()
                .all(
                    |server| match try_dig(&lab.client, server, READY_NAME, "A") {
                        Ok(r) if r.addresses() == [IpAddr::V4(DNS_V4)] => true,
                        Ok(r) => {
                            last_error = r.raw;
                            false
                        }
                        Err(e) => {
                            last_error = e;
                            false
                        }
                    },
                );
            answered.then_some(())
        });
        if ready.is_none() {
            let log = dnsmasq.log();
            panic!(
                "dnsmasq did not answer within 10 s: `{line}`\nlast dig: {last_error}\ndnsmasq log:\n{log}"
            );
        }
        dnsmasq
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What dnsmasq wrote so far (it logs every query).
    pub fn log(&self) -> String {
        self.log.text()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- dnsmasq log ---\n{}", self.log.text());
        }
    }
}
