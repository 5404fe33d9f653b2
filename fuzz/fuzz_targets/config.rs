//! Configuration text: TOML parsing and validation; a configuration that
//! passes must also summarize and build a detector.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinwatch::{
    config::{Config, HostDefaults},
    detector::Detector,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let host = HostDefaults {
        resolv_conf_nameservers: vec!["127.0.0.53".parse().unwrap()],
    };
    if let Ok(config) = Config::from_toml(text, None, &host) {
        let _ = config.summary();
        let _ = config.watched_ports();
        let _ = Detector::new(&config);
    }
});
