use std::{collections::HashMap, net::IpAddr};

use hickory_proto::rr::Name;
use ipnet::IpNet;

use super::names::{normalize_name, plain_hostname, text_buffer};
use crate::config::Database;

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) stand for the IPv4 address:
/// compare them as such, or a connect6 to a mapped address slips past an
/// IPv4 pin.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Lookups from hostnames and ports to the databases that pin them.
#[derive(Debug, Clone)]
pub struct PinIndex {
    databases: Vec<PinnedDatabase>,
    by_hostname: HashMap<String, usize>,
    by_port: HashMap<u16, Vec<usize>>,
}

#[derive(Debug, Clone)]
pub struct PinnedDatabase {
    pub name: String,
    pub pinned: Vec<IpNet>,
}

impl PinnedDatabase {
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.pinned.iter().any(|net| net.contains(&ip))
    }
}

impl PinIndex {
    pub fn new(databases: &[Database]) -> PinIndex {
        let mut index = PinIndex {
            databases: Vec::new(),
            by_hostname: HashMap::new(),
            by_port: HashMap::new(),
        };
        for (i, database) in databases.iter().enumerate() {
            index.databases.push(PinnedDatabase {
                name: database.name.clone(),
                pinned: database.pinned.clone(),
            });
            for hostname in &database.hostnames {
                index.by_hostname.insert(normalize_name(hostname), i);
            }
            for &port in &database.ports {
                index.by_port.entry(port).or_default().push(i);
            }
        }
        index
    }

    pub fn database(&self, index: usize) -> &PinnedDatabase {
        &self.databases[index]
    }

    /// The database a name belongs to; `name` in any case, with or without
    /// the trailing dot.
    pub fn database_for_name(&self, name: &str) -> Option<usize> {
        self.by_hostname.get(&normalize_name(name)).copied()
    }

    /// The database a DNS name from a message belongs to; allocates nothing.
    pub fn database_for_dns_name(&self, name: &Name) -> Option<usize> {
        let mut buffer = text_buffer();
        let text = plain_hostname(name, &mut buffer)?;
        self.by_hostname.get(text).copied()
    }

    pub fn databases_for_port(&self, port: u16) -> &[usize] {
        self.by_port.get(&port).map(Vec::as_slice).unwrap_or(&[])
    }
}
