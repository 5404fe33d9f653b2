//! What can be read of a DNS message whose end is missing: the header, the
//! questions, and the answer records that are whole.
use hickory_proto::{
    op::{Header, Message, Query},
    rr::Record,
    serialize::binary::{BinDecodable, BinDecoder},
};

/// None when not even the header and the questions are there.
pub(super) fn message(bytes: &[u8]) -> Option<Message> {
    let mut decoder = BinDecoder::new(bytes);
    let header = Header::read(&mut decoder).ok()?;
    let mut message = Message::new();
    for _ in 0..header.query_count() {
        message.add_query(Query::read(&mut decoder).ok()?);
    }
    for _ in 0..header.answer_count() {
        match Record::read(&mut decoder) {
            Ok(record) => {
                message.add_answer(record);
            }
            Err(_) => break,
        }
    }
    message.set_header(header);
    Some(message)
}
