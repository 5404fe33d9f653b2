//! A response's questions as every rule reads them, worked out once per
//! message: each question's CNAME chain and which of its names a database
//! watches. The answer check, the matching rules, the injected-record check
//! and the fragment check all start from these; looked up per rule, the
//! question's hostname text was built and hashed five or six times a
//! message.
use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::Name,
};

use super::{names::cname_chain, pins::PinIndex};

/// One question of a response, followed through its answers.
#[derive(Debug)]
pub(super) struct Asked<'m> {
    pub query: &'m Query,
    /// The question name, then the CNAME targets the answers lead to.
    pub chain: Vec<&'m Name>,
    /// The chain's watched names with their database's index, in chain
    /// order. Empty for the names no database uses, the common case, which
    /// then allocates nothing.
    pub watched: Vec<(&'m Name, usize)>,
}

impl Asked<'_> {
    /// The database of the first watched name on the chain.
    pub fn database(&self) -> Option<usize> {
        self.watched.first().map(|&(_, database)| database)
    }
}

/// Every question of `message` when it is a response; none for a query,
/// whose questions the rules read from the message itself.
pub(super) fn questions<'m>(pins: &PinIndex, message: &'m Message) -> Vec<Asked<'m>> {
    if message.message_type() != MessageType::Response {
        return Vec::new();
    }
    message
        .queries()
        .iter()
        .map(|query| {
            let chain = cname_chain(query.name(), message.answers());
            let watched = chain
                .iter()
                .filter_map(|&name| Some((name, pins.database_for_dns_name(name)?)))
                .collect();
            Asked {
                query,
                chain,
                watched,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::{RData, Record, rdata};

    use super::*;
    use crate::fixtures::{a_response, config};

    fn pins() -> PinIndex {
        let config = config(
            r#"
[[database]]
name = "orders"
hostnames = ["db.lab.test"]
ports = [26257]
pinned = ["192.0.2.0/24"]
"#,
        );
        PinIndex::new(&config.databases)
    }

    #[test]
    fn an_alias_of_a_watched_name_names_the_watched_link_and_its_database() {
        let mut message = a_response("App.Lab.Test.", 1, &[], 30);
        message.add_answer(Record::from_rdata(
            Name::from_ascii("app.lab.test.").unwrap(),
            30,
            RData::CNAME(rdata::CNAME(Name::from_ascii("DB.lab.test.").unwrap())),
        ));
        let asked = questions(&pins(), &message);
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].chain.len(), 2);
        let watched: Vec<_> = asked[0]
            .watched
            .iter()
            .map(|(n, db)| (n.to_ascii(), *db))
            .collect();
        assert_eq!(watched, vec![("DB.lab.test.".to_owned(), 0)]);
        assert_eq!(asked[0].database(), Some(0));
    }

    #[test]
    fn an_unwatched_name_has_no_database_and_a_query_no_questions_here() {
        let message = a_response("www.example.test.", 1, &[], 30);
        let asked = questions(&pins(), &message);
        assert_eq!(asked[0].chain.len(), 1);
        assert_eq!(asked[0].database(), None);
        let mut query = message.clone();
        query.set_message_type(MessageType::Query);
        assert!(questions(&pins(), &query).is_empty());
    }
}
