//! Ring-buffer records as the kernel would hand them, then the IP/DNS layer
//! behind a DNS packet record.
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use pinwatch::decode::{Clock, Record, decode_record, dns_events};

fuzz_target!(|data: &[u8]| {
    let clock = Clock::fixed(SystemTime::UNIX_EPOCH);
    if let Ok(Record::Dns(packet)) = decode_record(data, &clock) {
        let _ = dns_events(&packet);
    }
});
