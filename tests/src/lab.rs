//! Two network namespaces, `client` and `dns`, joined by a veth pair.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use crate::{
    cmd::{command, run},
    netns::{NetNs, reap_stale_namespaces},
    poll,
};

/// The client's end of the lab link.
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x10);
/// The resolver's end of the lab link (and the client's default gateway).
pub const DNS_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
pub const DNS_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 0x53);

/// ```text
///  client ns                         dns ns
///  pw0 198.51.100.10/24  <-veth->  pw1 198.51.100.53/24
///      2001:db8:51::10/64              2001:db8:51::53/64
///  default via .53 / ::53            lo: addresses added by add_peer_address
/// ```
/// Both namespaces are deleted (their processes killed) on drop.
pub struct Lab {
    pub client: NetNs,
    pub dns: NetNs,
}

impl Lab {
    pub fn new() -> Lab {
        crate::require_root();
        reap_stale_namespaces();
        let client = NetNs::new("client");
        let dns = NetNs::new("dns");
        for ns in [&client, &dns] {
            // No duplicate address detection on the lab link, the link-local
            // addresses included: addresses work as soon as the link is up.
            run(ns
                .command("sh")
                .args(["-c", "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad"]));
        }
        client.ip(&[
            "link",
            "add",
            "pw0",
            "type",
            "veth",
            "peer",
            "name",
            "pw1",
            "netns",
            dns.name(),
        ]);
        for (ns, dev, v4, v6) in [
            (&client, "pw0", CLIENT_V4, CLIENT_V6),
            (&dns, "pw1", DNS_V4, DNS_V6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev]);
            // nodad: the address is usable at once, no tentative state.
            ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        for (ns, dev) in [(&client, "pw0"), (&dns, "pw1")] {
            wait_link_ready(ns, dev);
        }
        client.ip(&["route", "add", "default", "via", &DNS_V4.to_string()]);
        client.ip(&["-6", "route", "add", "default", "via", &DNS_V6.to_string()]);
        Lab { client, dns }
    }

    /// Makes `ip` reachable from the client: it is added to `lo` in the dns
    /// namespace, so a connect to a port nobody listens on is refused at once
    /// instead of timing out.
    pub fn add_peer_address(&self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self
                .dns
                .ip(&["addr", "add", &format!("{v4}/32"), "dev", "lo"]),
            IpAddr::V6(v6) => self.dns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{v6}/128"),
                "dev",
                "lo",
                "nodad",
            ]),
        }
    }
}

/// Waits (5 s at most) until `dev` has carrier and no tentative address.
fn wait_link_ready(ns: &NetNs, dev: &str) {
    let ready = poll(Duration::from_secs(5), || {
        let link = run(&mut command(
            "ip",
            &["-n", ns.name(), "-o", "link", "show", "dev", dev],
        ));
        let addrs = run(&mut command(
            "ip",
            &["-n", ns.name(), "-o", "addr", "show", "dev", dev],
        ));
        (link.contains("state UP") && !link.contains("NO-CARRIER") && !addrs.contains("tentative"))
            .then_some(())
    });
    assert!(
        ready.is_some(),
        "{dev} in {} did not come up within 5 s",
        ns.name()
    );
}

impl Default for Lab {
    fn default() -> Lab {
        Lab::new()
    }
}
