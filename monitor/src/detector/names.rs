//! DNS names as the detector compares them, without allocating on the hot
//! path: chains and lookups borrow the message's own names, and hostname
//! text is built in a stack buffer.
//!
//! hickory's `Name` equality ignores letter case, which is how a CNAME
//! owner is matched to its target; configured hostnames are compared in
//! lower case without the trailing dot ([`normalize_name`]).
use std::{borrow::Cow, net::IpAddr};

use hickory_proto::rr::{Name, RData, Record};

/// CNAME links followed from the question name before giving up: deeper
/// chains are not produced by real zones, and a loop must end.
pub const MAX_CNAME_DEPTH: usize = 8;

/// The longest hostname text: 255 octets on the wire hold at most 254
/// characters of labels and dots.
const MAX_TEXT: usize = 255;

/// The question name followed through the answer's CNAME records, starting
/// with the question itself, at most [`MAX_CNAME_DEPTH`] links.
pub(crate) fn cname_chain<'a>(question: &'a Name, answers: &'a [Record]) -> Vec<&'a Name> {
    let mut chain = vec![question];
    for _ in 0..MAX_CNAME_DEPTH {
        match next_link(&chain, answers) {
            Some(target) => chain.push(target),
            None => break,
        }
    }
    chain
}

/// Whether the follow limit cut `chain` (from [`cname_chain`]): its last
/// name still has a CNAME to a name not yet followed. A stub resolver
/// follows such a chain to its end, so its addresses went unjudged.
pub(crate) fn chain_cut(chain: &[&Name], answers: &[Record]) -> bool {
    chain.len() > MAX_CNAME_DEPTH && next_link(chain, answers).is_some()
}

/// The target of the CNAME owned by the chain's last name, unless the
/// chain holds it already (a loop ends).
fn next_link<'a>(chain: &[&'a Name], answers: &'a [Record]) -> Option<&'a Name> {
    let current = *chain.last()?;
    let target = answers.iter().find_map(|record| match record.data() {
        RData::CNAME(target) if same_name(record.name(), current) => Some(&target.0),
        _ => None,
    })?;
    (!chain.iter().any(|&seen| same_name(seen, target))).then_some(target)
}

/// A/AAAA addresses owned by any name of the chain, with their TTLs, and the
/// smallest TTL; `None` when the answer has no address for the chain.
pub(crate) fn addresses_of(
    chain: &[&Name],
    answers: &[Record],
) -> Option<(u32, Vec<(IpAddr, u32)>)> {
    let ips: Vec<(IpAddr, u32)> = answers
        .iter()
        .filter(|record| chain.iter().any(|&name| same_name(name, record.name())))
        .filter_map(|record| match record.data() {
            RData::A(a) => Some((IpAddr::V4(a.0), record.ttl())),
            RData::AAAA(aaaa) => Some((IpAddr::V6(aaaa.0), record.ttl())),
            _ => None,
        })
        .collect();
    let min_ttl = ips.iter().map(|&(_, ttl)| ttl).min()?;
    Some((min_ttl, ips))
}

/// Whether two names are the same, ignoring ASCII letter case (RFC 4343)
/// and whether they end at the root: hickory's own comparison builds a
/// label value per label, which costs more than the rest of a check.
pub fn same_name(a: &Name, b: &Name) -> bool {
    a.num_labels() == b.num_labels()
        && a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// Hostname text of `name` (lower case, no trailing dot) written into
/// `buffer`; `None` when a label holds a byte a hostname cannot (a dot, a
/// backslash, a space, a control or non-ASCII byte), whose text form is
/// escaped and so never equals a configured hostname.
pub fn plain_hostname<'b>(name: &Name, buffer: &'b mut [u8; MAX_TEXT]) -> Option<&'b str> {
    let mut len = 0;
    for (index, label) in name.iter().enumerate() {
        if index > 0 {
            *buffer.get_mut(len)? = b'.';
            len += 1;
        }
        let text = buffer.get_mut(len..len + label.len())?;
        text.copy_from_slice(label);
        if !text
            .iter()
            .all(|&byte| byte.is_ascii_graphic() && byte != b'.' && byte != b'\\')
        {
            return None;
        }
        text.make_ascii_lowercase();
        len += label.len();
    }
    std::str::from_utf8(&buffer[..len]).ok()
}

/// Hostname text of `name`, as [`plain_hostname`], or the escaped text form
/// normalized when it has unusual bytes.
pub fn hostname(name: &Name) -> String {
    hostname_in(name, &mut text_buffer()).into_owned()
}

/// [`hostname`], borrowed from `buffer` for a plain name: no allocation on
/// the hot path, where nearly every name is plain.
pub fn hostname_in<'b>(name: &Name, buffer: &'b mut [u8; MAX_TEXT]) -> Cow<'b, str> {
    match plain_hostname(name, buffer) {
        Some(text) => Cow::Borrowed(text),
        None => Cow::Owned(normalize_name(&crate::dnstext::name(name))),
    }
}

/// Lower case, no trailing dot: how hostnames are compared.
pub fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// A buffer for [`plain_hostname`].
pub fn text_buffer() -> [u8; MAX_TEXT] {
    [0; MAX_TEXT]
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn hostname_text_is_lower_case_without_the_root_dot() {
        let name = Name::from_str("Cockroach.PROD.internal.").unwrap();
        assert_eq!(hostname(&name), "cockroach.prod.internal");
        let mut buffer = text_buffer();
        assert_eq!(
            plain_hostname(&name, &mut buffer),
            Some("cockroach.prod.internal")
        );
    }

    #[test]
    fn a_dot_inside_a_label_never_spells_a_hostname() {
        // One label "db.lab" then "test": its text form escapes the dot.
        let name = Name::from_labels(vec![&b"db.lab"[..], &b"test"[..]]).unwrap();
        let mut buffer = text_buffer();
        assert_eq!(plain_hostname(&name, &mut buffer), None);
        assert_eq!(hostname(&name), "db\\.lab.test");
    }

    #[test]
    fn the_longest_name_fits_the_buffer() {
        let label = [b'a'; 63];
        let name =
            Name::from_labels(vec![&label[..], &label[..], &label[..], &label[..61]]).unwrap();
        let mut buffer = text_buffer();
        assert_eq!(plain_hostname(&name, &mut buffer).map(str::len), Some(253));
    }

    #[test]
    fn names_compare_without_letter_case() {
        let lower = Name::from_str("db.lab.test.").unwrap();
        assert!(same_name(&lower, &Name::from_str("DB.Lab.TEST.").unwrap()));
        assert!(same_name(&lower, &Name::from_str("db.lab.test").unwrap()));
        assert!(!same_name(
            &lower,
            &Name::from_str("db.lab.tests.").unwrap()
        ));
        assert!(!same_name(&lower, &Name::from_str("lab.test.").unwrap()));
        // Same bytes, other label boundaries.
        let split = Name::from_labels(vec![&b"db.lab"[..], &b"test"[..]]).unwrap();
        assert!(!same_name(&lower, &split));
    }

    #[test]
    fn a_cname_loop_ends() {
        let a = Name::from_str("a.test.").unwrap();
        let b = Name::from_str("b.test.").unwrap();
        let records = vec![
            Record::from_rdata(
                a.clone(),
                60,
                RData::CNAME(hickory_proto::rr::rdata::CNAME(b.clone())),
            ),
            Record::from_rdata(
                b.clone(),
                60,
                RData::CNAME(hickory_proto::rr::rdata::CNAME(a.clone())),
            ),
        ];
        let chain = cname_chain(&a, &records);
        assert_eq!(chain, vec![&a, &b]);
        assert!(!chain_cut(&chain, &records));
    }

    #[test]
    fn a_chain_longer_than_the_limit_is_cut_and_says_so() {
        let names: Vec<Name> = (0..=MAX_CNAME_DEPTH + 1)
            .map(|i| Name::from_str(&format!("n{i}.test.")).unwrap())
            .collect();
        let links = |count: usize| -> Vec<Record> {
            names
                .windows(2)
                .take(count)
                .map(|pair| {
                    Record::from_rdata(
                        pair[0].clone(),
                        60,
                        RData::CNAME(hickory_proto::rr::rdata::CNAME(pair[1].clone())),
                    )
                })
                .collect()
        };
        // Exactly the limit: every link followed, nothing left.
        let records = links(MAX_CNAME_DEPTH);
        let chain = cname_chain(&names[0], &records);
        assert_eq!(chain.len(), MAX_CNAME_DEPTH + 1);
        assert!(!chain_cut(&chain, &records));
        // One more link than the limit.
        let records = links(MAX_CNAME_DEPTH + 1);
        let chain = cname_chain(&names[0], &records);
        assert_eq!(chain.len(), MAX_CNAME_DEPTH + 1);
        assert!(chain_cut(&chain, &records));
    }
}
