//! An IP packet through the daemon's DNS path: IP/UDP/TCP and DNS parsing,
//! the detector's name matching and pin checks, folding and ECS encoding.
//! The first byte picks the direction and whether the capture was cut.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use pinwatch::{
    alert::{encode, fold::Folder},
    decode::{PacketMeta, parse_ip_dns},
    detector::Detector,
    event::{Direction, Event},
};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, packet)) = data.split_first() else {
        return;
    };
    let meta = PacketMeta {
        timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000),
        direction: if flags & 1 == 0 {
            Direction::Ingress
        } else {
            Direction::Egress
        },
        cgroup_id: 0,
        truncated: flags & 2 != 0,
    };
    let Ok(events) = parse_ip_dns(packet, meta) else {
        return;
    };
    let config = pinwatch_fuzz::config();
    let mut detector = Detector::new(config);
    let mut folder = Folder::new(config.alerts.dedup_window, 16);
    let agent = pinwatch_fuzz::agent();
    // Twice: the second pass meets the state (recent answers) of the first.
    for _ in 0..2 {
        for event in events.iter().cloned().map(Event::Dns) {
            for alert in detector
                .observe(&event)
                .into_iter()
                .flat_map(|a| folder.offer(a))
            {
                let _ = encode(&alert, &agent, "fuzz");
            }
        }
    }
    for alert in folder.flush() {
        let _ = encode(&alert, &agent, "fuzz");
    }
});
