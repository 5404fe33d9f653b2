//! Parsing and canonical forms for hostnames and addresses. Canonical forms
//! matter because the detector compares them byte for byte against what the
//! kernel reports: lowercase names without the root dot, IPv4 as IPv4 even
//! when written as an IPv4-mapped IPv6 address.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::rr::Name;
use ipnet::{IpNet, Ipv4Net};

use super::error::{HostnameFault, Problem};

/// Lowercases `raw` and drops one trailing dot, then checks it is a plain
/// DNS hostname (RFC 1123 labels, plus '_' which service names use).
pub(crate) fn normalize_hostname(raw: &str) -> Result<String, Problem> {
    let bad = |fault| Problem::BadHostname {
        value: raw.to_owned(),
        fault,
    };
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if name.is_empty() {
        return Err(bad(HostnameFault::Empty));
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err(bad(HostnameFault::IpLiteral));
    }
    if name.len() > 253 {
        return Err(bad(HostnameFault::TooLong(name.len())));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(bad(HostnameFault::EmptyLabel));
        }
        if label.len() > 63 {
            return Err(bad(HostnameFault::LabelTooLong(label.to_owned())));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(bad(HostnameFault::BadChar(c)));
        }
    }
    // "10.0.0.300" passes the label rules but is surely a typo for an address.
    let tld = name.rsplit('.').next().unwrap_or_default();
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(HostnameFault::NumericTld));
    }
    // The decoder parses names with hickory; refuse anything it would not accept.
    Name::from_ascii(&name).map_err(|e| bad(HostnameFault::Rejected(e.to_string())))?;
    Ok(name)
}

/// Parses a `pinned` entry: a bare address becomes a /32 or /128; a CIDR
/// must name its network address exactly (no host bits set).
pub(crate) fn parse_pinned(raw: &str) -> Result<IpNet, Problem> {
    let net = if raw.contains('/') {
        let net: IpNet = raw
            .parse()
            .map_err(|_| Problem::BadPinned(raw.to_owned()))?;
        if net.addr() != net.network() {
            return Err(Problem::HostBits {
                value: raw.to_owned(),
                network: canonical_net(net.trunc()),
            });
        }
        net
    } else {
        let addr: IpAddr = raw
            .parse()
            .map_err(|_| Problem::BadPinned(raw.to_owned()))?;
        IpNet::from(addr)
    };
    Ok(canonical_net(net))
}

/// `::ffff:a.b.c.d/p` with p ≥ 96 covers only IPv4 addresses; write it as
/// the IPv4 network it is so it matches IPv4 connects and A records.
pub(crate) fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// Parses a resolver address; IPv4-mapped IPv6 becomes IPv4.
pub(crate) fn parse_ip(raw: &str) -> Result<IpAddr, Problem> {
    raw.parse::<IpAddr>()
        .map(|a| a.to_canonical())
        .map_err(|_| Problem::BadIp(raw.to_owned()))
}

/// Local stub resolvers trusted by default: a caching stub on 127.0.0.1 or
/// ::1 (dnsmasq, unbound) and systemd-resolved on 127.0.0.53.
pub const LOOPBACK_STUBS: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)),
    IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_rules() {
        assert_eq!(
            normalize_hostname("DB.Example.COM.").unwrap(),
            "db.example.com"
        );
        assert_eq!(
            normalize_hostname("_svc.db-1.internal").unwrap(),
            "_svc.db-1.internal"
        );
        let fault = |s: &str| match normalize_hostname(s) {
            Err(Problem::BadHostname { fault, .. }) => fault,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(fault("."), HostnameFault::Empty);
        assert_eq!(fault("a..b"), HostnameFault::EmptyLabel);
        assert_eq!(fault("10.0.0.300"), HostnameFault::NumericTld);
        assert_eq!(fault("::1"), HostnameFault::IpLiteral);
        assert_eq!(fault("db*.internal"), HostnameFault::BadChar('*'));
        assert!(matches!(
            fault(&"a".repeat(64)),
            HostnameFault::LabelTooLong(_)
        ));
        let long = ["abcdefghi"; 26].join(".");
        assert_eq!(fault(&long), HostnameFault::TooLong(259));
    }

    #[test]
    fn pinned_canonical_forms() {
        let p = |s: &str| parse_pinned(s).unwrap().to_string();
        assert_eq!(p("192.0.2.7"), "192.0.2.7/32");
        assert_eq!(p("2001:db8::7"), "2001:db8::7/128");
        assert_eq!(p("::ffff:192.0.2.7"), "192.0.2.7/32");
        assert_eq!(p("::ffff:192.0.2.0/120"), "192.0.2.0/24");
        assert_eq!(p("2001:DB8::/32"), "2001:db8::/32");
        assert_eq!(
            parse_ip("::ffff:198.51.100.1").unwrap().to_string(),
            "198.51.100.1"
        );
    }
}
