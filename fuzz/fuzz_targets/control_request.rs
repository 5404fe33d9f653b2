//! What a client sends on the control socket.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinwatch::control::parse_request;

fuzz_target!(|data: &[u8]| {
    if let Err(error) = parse_request(data) {
        // The error is sent back as text: it must render.
        let _ = error.to_string();
    }
});
