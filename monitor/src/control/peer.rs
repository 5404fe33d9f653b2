//! Who may talk to the control socket. The socket's file mode already keeps
//! others out; the daemon checks again on every connection, so a socket
//! briefly left with looser permissions, or a connection passed on, gains
//! nobody access.
use std::{io, os::fd::AsRawFd};

use tokio::net::UnixStream;

/// The credentials of a connected client, taken by the kernel at connect().
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// Who is served: root, the daemon's own user, and members of the control
/// group when one is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub daemon_uid: u32,
    pub group: Option<u32>,
}

impl Access {
    pub fn allows(&self, peer: &Peer) -> bool {
        peer.uid == 0
            || peer.uid == self.daemon_uid
            || self
                .group
                .is_some_and(|g| peer.gid == g || peer.groups.contains(&g))
    }

    /// Reads the peer's credentials; the supplementary groups only when a
    /// control group is configured.
    pub fn peer(&self, stream: &UnixStream) -> io::Result<Peer> {
        let cred = stream.peer_cred()?;
        let mut peer = Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            groups: Vec::new(),
        };
        if self.group.is_some() {
            peer.groups = peer_groups(stream)?;
        }
        Ok(peer)
    }
}

/// SO_PEERGROUPS (Linux 4.13): the peer's supplementary groups as they were
/// at connect(). Unlike looking the uid up in the group database or reading
/// /proc/PID/status, this cannot race with the peer exiting or changing.
fn peer_groups(stream: &UnixStream) -> io::Result<Vec<u32>> {
    let gid_size = size_of::<libc::gid_t>();
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = libc::socklen_t::try_from(groups.len() * gid_size)
            .map_err(|_| io::Error::other("too many supplementary groups"))?;
        // SAFETY: the buffer is valid for `len` bytes and gid_t-aligned;
        // the kernel writes at most `len` bytes and updates `len`.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / gid_size;
        if rc == 0 {
            groups.truncate(needed);
            return Ok(groups);
        }
        let error = io::Error::last_os_error();
        // ERANGE: the buffer was too small and `len` says how big it must be.
        if error.raw_os_error() == Some(libc::ERANGE) && needed > groups.len() {
            groups.resize(needed, 0);
            continue;
        }
        return Err(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn root_and_the_daemons_user_are_served() {
        let access = Access {
            daemon_uid: 998,
            group: None,
        };
        assert!(access.allows(&peer(0, 0, &[])));
        assert!(access.allows(&peer(998, 998, &[])));
        assert!(!access.allows(&peer(65534, 65534, &[])));
    }

    #[test]
    fn members_of_the_group_are_served_by_primary_or_supplementary_gid() {
        let access = Access {
            daemon_uid: 0,
            group: Some(4242),
        };
        assert!(access.allows(&peer(1000, 4242, &[])));
        assert!(access.allows(&peer(1000, 1000, &[27, 4242])));
        assert!(!access.allows(&peer(1000, 1000, &[27, 100])));
    }

    #[tokio::test]
    async fn reads_the_credentials_of_a_connected_peer() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        // SAFETY: no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let access = Access {
            daemon_uid: u32::MAX,
            group: Some(u32::MAX - 1),
        };
        let peer = access.peer(&ours).unwrap();
        assert_eq!((peer.uid, peer.gid), (uid, gid));
        // SAFETY: passing a null list with size 0 only returns the count.
        let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        assert_eq!(peer.groups.len(), count as usize);
    }
}
