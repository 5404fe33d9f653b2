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
    /// The text lengths of the configured hostnames, as a bitset: a name
    /// of any other length is none of them. Most names a host resolves
    /// are turned away here, before their text is built and hashed.
    hostname_lengths: [u64; 4],
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
            hostname_lengths: [0; 4],
            by_port: HashMap::new(),
        };
        for (i, database) in databases.iter().enumerate() {
            index.databases.push(PinnedDatabase {
                name: database.name.clone(),
                pinned: database.pinned.clone(),
            });
            for hostname in &database.hostnames {
                let key = normalize_name(hostname);
                // Longer text is no DNS name's (255 octets on the wire).
                if let Some(word) = index.hostname_lengths.get_mut(key.len() / 64) {
                    *word |= 1 << (key.len() % 64);
                }
                index.by_hostname.insert(key, i);
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
        // The labels and the dots between them: the length of the text
        // `plain_hostname` would write.
        let len = name.len().saturating_sub(1);
        let word = self.hostname_lengths.get(len / 64)?;
        if word & (1 << (len % 64)) == 0 {
            return None;
        }
        let mut buffer = text_buffer();
        let text = plain_hostname(name, &mut buffer)?;
        self.by_hostname.get(text).copied()
    }

    pub fn databases_for_port(&self, port: u16) -> &[usize] {
        self.by_port.get(&port).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::config;

    #[test]
    fn names_are_found_whatever_their_length_filter_turns_away() {
        let long = format!(
            "{}.lab.test",
            ["a".repeat(63), "b".repeat(63), "c".repeat(63)].join(".")
        );
        let config = config(&format!(
            r#"
[[database]]
name = "orders"
hostnames = ["db.lab.test", "{long}"]
ports = [26257]
pinned = ["192.0.2.0/24"]
"#
        ));
        let index = PinIndex::new(&config.databases);
        let found = |text: &str| index.database_for_dns_name(&Name::from_ascii(text).unwrap());
        assert_eq!(found("db.lab.test."), Some(0));
        assert_eq!(found("DB.Lab.Test"), Some(0));
        assert_eq!(found(&format!("{long}.")), Some(0));
        // Same length, another name; and names one longer or shorter.
        assert_eq!(found("dc.lab.test."), None);
        assert_eq!(found("db.lab.tests."), None);
        assert_eq!(found("d.lab.test."), None);
        assert_eq!(found("."), None);
    }
}
