//! Which process owns a DNS socket.
//!
//! The cgroup_skb programs see DNS packets with their socket's cookie but not
//! the process: packets are often sent from softirq context. These hooks run
//! in the process's own context when it hands a DNS socket an address:
//! - cgroup/sendmsg4 and sendmsg6: an unconnected UDP send to port 53
//!   (dnsmasq, unbound, dig);
//! - cgroup/connect4 and connect6: a UDP socket connected to port 53 (glibc's
//!   resolver), a TCP connect to port 53, a TCP connect to port 853 (DNS over
//!   TLS), or to port 443 of a well-known DNS over HTTPS resolver.
//!
//! Each socket is reported once (the `DNS_OWNERS` LRU map remembers the
//! record sent, by cookie), so a busy resolver costs one record per socket,
//! not one per query. The map keeps the record itself: the daemon reads it
//! back when its own bounded copy may have forgotten a socket that the
//! kernel still knows (every send refreshes the entry), so a long-lived
//! socket keeps its process. Every hook allows the call.
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, generated::bpf_get_socket_cookie,
    },
    macros::{cgroup_sock_addr, map},
    maps::LruHashMap,
    programs::SockAddrContext,
};
use pinwatch_common::{
    DNS_OWNER_MAX_ENTRIES, DNS_PORT, DnsOwnerEvent, EVENT_KIND_DNS_OWNER, LOSS_DNS_OWNER,
    OWNER_ROLE_DNS, OWNER_ROLE_DOH, OWNER_ROLE_DOT,
};

use super::{
    clock,
    maps::{EVENTS, SUBMIT_FLAGS, count_loss},
    sockaddr::{self, AF_INET, AF_INET6},
};

const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const ALLOW: i32 = 1;
const DOT_PORT: u16 = 853;
const HTTPS_PORT: u16 = 443;

/// Well-known public DNS over HTTPS resolvers (IPv4, network byte order):
/// Cloudflare, Google, Quad9, OpenDNS, AdGuard. A connect to port 443 of
/// one of them is most likely name resolution pinwatch cannot read.
const DOH_V4: [[u8; 4]; 11] = [
    [1, 1, 1, 1],
    [1, 0, 0, 1],
    [8, 8, 8, 8],
    [8, 8, 4, 4],
    [9, 9, 9, 9],
    [149, 112, 112, 112],
    [208, 67, 222, 222],
    [208, 67, 220, 220],
    [94, 140, 14, 14],
    [94, 140, 15, 15],
    [45, 90, 28, 0],
];

/// The same resolvers' IPv6 addresses, first 8 bytes and last 2: enough to
/// tell them apart from anything else.
const DOH_V6: [([u8; 8], [u8; 2]); 6] = [
    ([0x26, 0x06, 0x47, 0x00, 0x47, 0x00, 0, 0], [0x11, 0x11]),
    ([0x26, 0x06, 0x47, 0x00, 0x47, 0x00, 0, 0], [0x10, 0x01]),
    ([0x20, 0x01, 0x48, 0x60, 0x48, 0x60, 0, 0], [0x88, 0x88]),
    ([0x20, 0x01, 0x48, 0x60, 0x48, 0x60, 0, 0], [0x88, 0x44]),
    ([0x26, 0x20, 0x00, 0xfe, 0, 0, 0, 0], [0x00, 0xfe]),
    ([0x26, 0x20, 0x01, 0x19, 0x00, 0x35, 0, 0], [0x00, 0x35]),
];

/// The owner record of each socket reported, by cookie; least recently
/// used forgotten. Read by the daemon too.
#[map]
static DNS_OWNERS: LruHashMap<u64, DnsOwnerEvent> =
    LruHashMap::with_max_entries(DNS_OWNER_MAX_ENTRIES, 0);

#[cgroup_sock_addr(sendmsg4)]
pub fn pw_dns_sendmsg4(ctx: SockAddrContext) -> i32 {
    observe(&ctx, AF_INET, false);
    ALLOW
}

#[cgroup_sock_addr(sendmsg6)]
pub fn pw_dns_sendmsg6(ctx: SockAddrContext) -> i32 {
    observe(&ctx, AF_INET6, false);
    ALLOW
}

#[cgroup_sock_addr(connect4)]
pub fn pw_dns_connect4(ctx: SockAddrContext) -> i32 {
    observe(&ctx, AF_INET, true);
    ALLOW
}

#[cgroup_sock_addr(connect6)]
pub fn pw_dns_connect6(ctx: SockAddrContext) -> i32 {
    observe(&ctx, AF_INET6, true);
    ALLOW
}

#[inline(always)]
fn observe(ctx: &SockAddrContext, family: u32, connect: bool) {
    let addr = ctx.sock_addr;
    // The kernel's copy of the sockaddr, not user memory.
    // SAFETY: the context pointer is valid for the program's run, and these
    // are fields the verifier lets sock_addr programs read.
    let (protocol, user_port) = unsafe { ((*addr).protocol, (*addr).user_port) };
    let port = u16::from_be(user_port as u16);
    let role =
        if port == DNS_PORT && (protocol == IPPROTO_UDP || (connect && protocol == IPPROTO_TCP)) {
            OWNER_ROLE_DNS
        } else if connect && protocol == IPPROTO_TCP && port == DOT_PORT {
            OWNER_ROLE_DOT
        } else if connect
            && protocol == IPPROTO_TCP
            && port == HTTPS_PORT
            && is_doh(family, &sockaddr::destination(ctx, family))
        {
            OWNER_ROLE_DOH
        } else {
            return;
        };
    let daddr = sockaddr::destination(ctx, family);
    // SAFETY: the helper reads the socket behind the context.
    let socket_cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    if DNS_OWNERS.get_ptr(socket_cookie).is_some() {
        return;
    }
    // SAFETY: the helpers read the current task and take no pointers but
    // the comm buffer aya passes.
    let owner = unsafe {
        DnsOwnerEvent {
            kind: EVENT_KIND_DNS_OWNER,
            role,
            timestamp_ns: clock::now_ns(),
            pid_tgid: bpf_get_current_pid_tgid(),
            uid_gid: bpf_get_current_uid_gid(),
            cgroup_id: bpf_get_current_cgroup_id(),
            socket_cookie,
            daddr,
            dport: port,
            _pad: [0; 2],
            family,
            comm: bpf_get_current_comm().unwrap_or([0; 16]),
        }
    };
    let Some(mut entry) = EVENTS.reserve::<DnsOwnerEvent>(0) else {
        // Not remembered: the next send tries again.
        count_loss(LOSS_DNS_OWNER);
        return;
    };
    entry.write(owner);
    entry.submit(SUBMIT_FLAGS);
    let _ = DNS_OWNERS.insert(socket_cookie, owner, 0);
}

#[inline(always)]
fn is_doh(family: u32, daddr: &[u8; 16]) -> bool {
    if family == AF_INET {
        let mut i = 0;
        while i < DOH_V4.len() {
            let a = DOH_V4[i];
            if daddr[0] == a[0] && daddr[1] == a[1] && daddr[2] == a[2] && daddr[3] == a[3] {
                return true;
            }
            i += 1;
        }
        return false;
    }
    let mut i = 0;
    while i < DOH_V6.len() {
        let (head, tail) = DOH_V6[i];
        let mut same = daddr[14] == tail[0] && daddr[15] == tail[1];
        let mut j = 0;
        while j < 8 {
            same = same && daddr[j] == head[j];
            j += 1;
        }
        if same {
            return true;
        }
        i += 1;
    }
    false
}
