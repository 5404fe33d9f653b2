//! Reading the destination of a connect or sendmsg from the cgroup
//! sock_addr context: the kernel's copy of the sockaddr, not user memory.
use aya_ebpf::programs::SockAddrContext;

pub const AF_INET: u32 = 2;
pub const AF_INET6: u32 = 10;

/// The destination address in network byte order; IPv4 fills the first four
/// bytes. The context allows only 4-byte reads of `user_ip6`, hence words.
#[inline(always)]
pub fn destination(ctx: &SockAddrContext, family: u32) -> [u8; 16] {
    let addr = ctx.sock_addr;
    let mut daddr = [0u8; 16];
    // SAFETY: the context pointer is valid for the program's run.
    unsafe {
        if family == AF_INET {
            daddr[..4].copy_from_slice(&(*addr).user_ip4.to_ne_bytes());
        } else {
            let words = (*addr).user_ip6;
            daddr[0..4].copy_from_slice(&words[0].to_ne_bytes());
            daddr[4..8].copy_from_slice(&words[1].to_ne_bytes());
            daddr[8..12].copy_from_slice(&words[2].to_ne_bytes());
            daddr[12..16].copy_from_slice(&words[3].to_ne_bytes());
        }
    }
    daddr
}
