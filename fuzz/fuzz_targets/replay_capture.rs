//! A capture file through `pinwatch replay`: pcap/pcapng reading, link
//! layers, the DNS path, SYNs as connects, folding and ECS encoding.
//! (TCP reassembly does not exist yet; each segment is parsed on its own.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinwatch::{alert::encode, replay::replay};

fuzz_target!(|data: &[u8]| {
    let agent = pinwatch_fuzz::agent();
    let outcome = replay(data, pinwatch_fuzz::config(), |alert| {
        let _ = encode(alert, &agent, "fuzz");
    });
    if let Some(error) = outcome.error {
        let _ = error.to_string();
    }
});
