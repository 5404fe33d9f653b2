//! cgroup v2 paths → the container they belong to. Each runtime names a
//! container's cgroup its own way; the shapes recognised are in
//! `path_tests.rs`, each from a real host. Components are read from the
//! leaf up, so a container inside a container (kind, nested podman) is named
//! by the innermost one.

use super::Runtime;

/// What a cgroup path says about its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// Full 64-hex id.
    pub id: String,
    /// Known from the path's prefix (`docker-`, `crio-`…); `None` for a bare
    /// id (kubepods under cgroupfs), which the runtime state then decides.
    pub runtime: Option<Runtime>,
    /// From the `pod<uid>` cgroup above the container (dashes restored from
    /// systemd's underscores).
    pub pod_uid: Option<String>,
}

/// Length of a container id as runtimes write it: sha256 in hex.
const ID_LEN: usize = 64;
/// Length of a Kubernetes pod uid: a UUID with dashes.
const UID_LEN: usize = 36;

/// The container of a cgroup v2 path (as in `/proc/PID/cgroup`'s `0::` line);
/// `None` for host cgroups (services, sessions, slices, the root).
pub fn container_of(path: &str) -> Option<ContainerRef> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (at, (id, runtime)) = parts.iter().enumerate().rev().find_map(|(i, part)| {
        let parent = i.checked_sub(1).and_then(|p| parts.get(p)).copied();
        container_part(part, parent).map(|found| (i, found))
    })?;
    let above = parts.get(..at).unwrap_or_default();
    let pod_uid = above.iter().rev().find_map(|part| pod_uid(part));
    Some(ContainerRef {
        id: id.to_owned(),
        runtime,
        pod_uid,
    })
}

/// One path component naming a container: `docker-<id>.scope`,
/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`,
/// `libpod-<id>` (podman's cgroupfs manager), `nerdctl-<id>.scope`, or a
/// bare id (Docker's cgroupfs `/docker/<id>`, kubepods under cgroupfs).
fn container_part<'a>(part: &'a str, parent: Option<&str>) -> Option<(&'a str, Option<Runtime>)> {
    const PREFIXES: [(&str, Runtime); 5] = [
        ("docker-", Runtime::Docker),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::CriO),
        ("libpod-", Runtime::Podman),
        ("nerdctl-", Runtime::Containerd),
    ];
    let name = part.strip_suffix(".scope").unwrap_or(part);
    if is_hex_id(name) {
        let runtime = (parent == Some("docker")).then_some(Runtime::Docker);
        return Some((name, runtime));
    }
    // `crio-conmon-<id>`, `libpod-conmon-<id>`: the runtime's monitor, a
    // host process, fails the id check.
    PREFIXES.iter().find_map(|(prefix, runtime)| {
        let id = name.strip_prefix(prefix)?;
        is_hex_id(id).then_some((id, Some(*runtime)))
    })
}

/// `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid_with_underscores>.slice`
/// (systemd).
fn pod_uid(part: &str) -> Option<String> {
    let uid = match part.strip_suffix(".slice") {
        Some(slice) => {
            let (_, uid) = slice.rsplit_once("-pod")?;
            slice.starts_with("kubepods").then_some(uid)?
        }
        None => part.strip_prefix("pod")?,
    };
    let uid = uid.replace('_', "-");
    is_uid(&uid).then_some(uid)
}

fn is_hex_id(s: &str) -> bool {
    s.len() == ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_uid(s: &str) -> bool {
    s.len() == UID_LEN
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
