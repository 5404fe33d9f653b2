//! The C library resolver of a lab namespace: `ip netns exec` bind-mounts
//! `/etc/netns/<ns>/resolv.conf` over `/etc/resolv.conf` for the programs it
//! starts, so applications resolve names through the lab's dnsmasq.
use std::{fs, net::IpAddr, path::PathBuf};

use crate::netns::NetNs;

/// `/etc/netns/<ns>/resolv.conf`; Drop removes the directory.
pub struct ResolvConf {
    dir: PathBuf,
}

impl ResolvConf {
    pub fn set(ns: &NetNs, nameserver: impl Into<IpAddr>) -> ResolvConf {
        let dir = PathBuf::from("/etc/netns").join(ns.name());
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let guard = ResolvConf { dir };
        // One try, short timeout: a lost answer fails the test quickly.
        let text = format!(
            "nameserver {}\noptions timeout:2 attempts:1\n",
            nameserver.into()
        );
        fs::write(guard.dir.join("resolv.conf"), text).expect("write resolv.conf");
        guard
    }
}

impl Drop for ResolvConf {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
