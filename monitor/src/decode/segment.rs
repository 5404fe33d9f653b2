//! Database connection segments: the TCP payload at the opening of a
//! connection to a watched port, with the client and server endpoints.
use std::net::SocketAddr;

use etherparse::{LaxSlicedPacket, TransportSlice};

use super::{DecodeError, DnsPacket};
use crate::event::{DbSegmentEvent, Direction};

/// Reads the TCP segment a database segment record carries.
pub fn db_segment_event(packet: &DnsPacket) -> Result<DbSegmentEvent, DecodeError> {
    let sliced = LaxSlicedPacket::from_ip(&packet.ip_packet).map_err(DecodeError::Ip)?;
    let (source_ip, destination_ip) = match &sliced.net {
        Some(etherparse::LaxNetSlice::Ipv4(v4)) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        ),
        Some(etherparse::LaxNetSlice::Ipv6(v6)) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
        _ => return Err(DecodeError::UnsupportedProtocol { protocol: 0 }),
    };
    let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else {
        return Err(DecodeError::Truncated {
            layer: "TCP header",
            detail: "the database segment record holds no complete TCP header".into(),
        });
    };
    let source = SocketAddr::new(source_ip, tcp.source_port());
    let destination = SocketAddr::new(destination_ip, tcp.destination_port());
    let (client, server) = match packet.direction {
        Direction::Egress => (source, destination),
        Direction::Ingress => (destination, source),
    };
    Ok(DbSegmentEvent {
        timestamp: packet.timestamp,
        direction: packet.direction,
        client,
        server,
        socket_cookie: packet.socket_cookie,
        payload: tcp.payload().to_vec(),
        cut_short: packet.truncated,
    })
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use etherparse::PacketBuilder;

    use super::*;

    fn packet(direction: Direction, payload: &[u8], truncated: bool) -> DnsPacket {
        let builder = PacketBuilder::ipv4([198, 51, 100, 10], [192, 0, 2, 10], 64)
            .tcp(40000, 26257, 1, 64240);
        let mut bytes = Vec::new();
        builder.write(&mut bytes, payload).unwrap();
        DnsPacket {
            timestamp: UNIX_EPOCH,
            direction,
            cgroup_id: 0,
            truncated,
            socket_cookie: 77,
            ip_packet: bytes,
            seen_at: crate::event::Hook::Socket,
        }
    }

    #[test]
    fn egress_segment_names_client_and_server() {
        let event = db_segment_event(&packet(
            Direction::Egress,
            b"\0\0\0\x08\x04\xd2\x16\x2f",
            false,
        ))
        .unwrap();
        assert_eq!(event.client, "198.51.100.10:40000".parse().unwrap());
        assert_eq!(event.server, "192.0.2.10:26257".parse().unwrap());
        assert_eq!(event.payload, b"\0\0\0\x08\x04\xd2\x16\x2f");
        assert_eq!(event.socket_cookie, 77);
        assert!(!event.cut_short);
    }

    #[test]
    fn ingress_segment_swaps_the_endpoints() {
        // A packet from the server seen arriving at the client's socket.
        let builder = PacketBuilder::ipv4([192, 0, 2, 10], [198, 51, 100, 10], 64)
            .tcp(26257, 40000, 1, 64240);
        let mut bytes = Vec::new();
        builder.write(&mut bytes, b"N").unwrap();
        let packet = DnsPacket {
            timestamp: UNIX_EPOCH,
            direction: Direction::Ingress,
            cgroup_id: 0,
            truncated: true,
            socket_cookie: 1,
            ip_packet: bytes,
            seen_at: crate::event::Hook::Socket,
        };
        let event = db_segment_event(&packet).unwrap();
        assert_eq!(event.client, "198.51.100.10:40000".parse().unwrap());
        assert_eq!(event.server.port(), 26257);
        assert_eq!(event.payload, b"N");
        assert!(event.cut_short);
    }

    #[test]
    fn garbage_and_cut_headers_are_errors() {
        let mut p = packet(Direction::Egress, b"x", false);
        p.ip_packet.truncate(30);
        assert!(db_segment_event(&p).is_err());
        p.ip_packet = vec![0xff; 40];
        assert!(db_segment_event(&p).is_err());
    }
}
