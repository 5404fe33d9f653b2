//! What `pinwatch learn` prints: `[[database]]` tables `check-config`
//! accepts, each preceded by `# seen …` comments saying what the answers
//! were, and notes for stderr about what could not be learned.
use std::{
    fmt::{Display, Write as _},
    net::IpAddr,
    time::SystemTime,
};

use ipnet::IpNet;

use super::{HostSeen, Learner, Plan, PlannedDatabase};

#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    /// One covering network per address family instead of exact addresses.
    pub aggregate: bool,
    pub started: SystemTime,
    pub ended: SystemTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Valid TOML: comments and `[[database]]` tables.
    pub toml: String,
    /// One line each for stderr: hostnames without answers, omitted
    /// databases, lost events.
    pub notes: Vec<String>,
}

pub fn render(plan: &Plan, learner: &Learner, options: &RenderOptions) -> Rendered {
    let mut toml = String::new();
    let mut notes = Vec::new();
    let duration = options
        .ended
        .duration_since(options.started)
        .unwrap_or_default();
    // Rounded to the second, as the timestamps beside it.
    let duration = humantime::format_duration(std::time::Duration::from_secs(
        (duration.as_millis() as u64 + 500) / 1000,
    ));
    let _ = writeln!(
        toml,
        "# pinwatch learn: DNS answers delivered on this host from {} to {} ({duration}).",
        rfc3339(options.started),
        rfc3339(options.ended),
    );
    toml.push_str(
        "# These are the addresses the resolvers gave, genuine or not: check them before pinning.\n",
    );
    if learner.lost > 0 {
        let note = format!(
            "{} events were lost while watching; answers may be missing",
            learner.lost
        );
        let _ = writeln!(toml, "# warning: {note}.");
        notes.push(note);
    }
    for database in &plan.databases {
        toml.push('\n');
        render_database(&mut toml, &mut notes, database, learner, options.aggregate);
    }
    Rendered { toml, notes }
}

fn render_database(
    toml: &mut String,
    notes: &mut Vec<String>,
    database: &PlannedDatabase,
    learner: &Learner,
    aggregate: bool,
) {
    let empty = HostSeen::default();
    let seen: Vec<(&str, &HostSeen)> = database
        .hostnames
        .iter()
        .map(|h| (h.as_str(), learner.seen(h).unwrap_or(&empty)))
        .collect();
    let silent: Vec<&str> = seen
        .iter()
        .filter(|(_, s)| s.answers == 0)
        .map(|(h, _)| *h)
        .collect();
    if silent.len() == seen.len() {
        let note = format!(
            "database {} omitted: no answers seen for {}",
            quote(&database.name),
            silent.join(", ")
        );
        let _ = writeln!(toml, "# {note}");
        notes.push(note);
        return;
    }
    let mut addresses: Vec<IpAddr> = seen
        .iter()
        .flat_map(|(_, s)| s.addresses.keys().copied())
        .collect();
    addresses.sort();
    addresses.dedup();

    let _ = writeln!(toml, "# database {}:", quote(&database.name));
    for (hostname, s) in &seen {
        if s.answers == 0 {
            let _ = writeln!(toml, "# seen {hostname}: no answers");
            notes.push(format!(
                "no answers seen for {hostname} (database {})",
                quote(&database.name)
            ));
            continue;
        }
        let _ = writeln!(toml, "# seen {hostname}: {}", describe(s));
    }
    if !database.pinned_now.is_empty() {
        let outside: Vec<IpAddr> = addresses
            .iter()
            .copied()
            .filter(|ip| !database.pinned_now.iter().any(|net| net.contains(ip)))
            .collect();
        let _ = write!(toml, "# pinned now: {}", join(&database.pinned_now));
        if outside.is_empty() {
            toml.push_str("; every address seen is inside it\n");
        } else {
            let _ = writeln!(toml, "; seen outside it: {}", join(&outside));
        }
    }
    let pinned: Vec<String> = if aggregate {
        let networks = covering_networks(&addresses);
        for net in &networks {
            let inside = addresses.iter().filter(|ip| net.contains(*ip)).count();
            let _ = writeln!(
                toml,
                "# --aggregate: {net} covers {} addresses, {inside} of them seen",
                size(net)
            );
        }
        networks.iter().map(ToString::to_string).collect()
    } else {
        addresses.iter().map(ToString::to_string).collect()
    };

    let _ = writeln!(toml, "[[database]]");
    let _ = writeln!(toml, "name = {}", quote(&database.name));
    let _ = writeln!(toml, "hostnames = {}", quote_list(&database.hostnames));
    let _ = writeln!(toml, "ports = [{}]", join(&database.ports));
    let _ = writeln!(toml, "pinned = {}", quote_list(&pinned));
    let _ = writeln!(toml, "mode = {}", quote(database.mode.as_str()));
}

/// `2 answers from resolver 198.51.100.53, TTL 300 s, first … last …`,
/// then each address with how many answers carried it.
fn describe(seen: &HostSeen) -> String {
    let resolvers = if seen.resolvers.len() == 1 {
        "resolver"
    } else {
        "resolvers"
    };
    let ttl = match seen.ttl {
        Some((low, high)) if low == high => format!("TTL {low} s"),
        Some((low, high)) => format!("TTL {low}-{high} s"),
        None => "no TTL".to_owned(),
    };
    let addresses: Vec<String> = seen
        .addresses
        .iter()
        .map(|(ip, count)| format!("{ip} ({count})"))
        .collect();
    format!(
        "{} {} from {resolvers} {}, {ttl}, first {}, last {}; addresses (answers carrying each): {}",
        seen.answers,
        if seen.answers == 1 {
            "answer"
        } else {
            "answers"
        },
        join(&seen.resolvers.iter().collect::<Vec<_>>()),
        seen.first_seen.map_or_else(|| "-".into(), rfc3339),
        seen.last_seen.map_or_else(|| "-".into(), rfc3339),
        addresses.join(", "),
    )
}

/// The smallest network covering every address of each family, IPv4 first.
/// It may pin addresses never seen; the comments say how many.
pub(super) fn covering_networks(addresses: &[IpAddr]) -> Vec<IpNet> {
    let v4: Vec<IpAddr> = addresses.iter().copied().filter(IpAddr::is_ipv4).collect();
    let v6: Vec<IpAddr> = addresses.iter().copied().filter(IpAddr::is_ipv6).collect();
    [v4, v6]
        .iter()
        .filter_map(|family| smallest_cover(family))
        .collect()
}

fn smallest_cover(family: &[IpAddr]) -> Option<IpNet> {
    let first = *family.first()?;
    let max = if first.is_ipv4() { 32 } else { 128 };
    (0..=max)
        .rev()
        .map(|len| {
            IpNet::new(first, len)
                .expect("prefix length within the family")
                .trunc()
        })
        .find(|net| family.iter().all(|ip| net.contains(ip)))
}

/// Addresses in `net`, as text (an IPv6 network can hold 2^128).
fn size(net: &IpNet) -> String {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    match 1u64.checked_shl(host_bits) {
        Some(n) if host_bits < 64 => n.to_string(),
        _ => format!("2^{host_bits}"),
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn quote_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn join<T: Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
