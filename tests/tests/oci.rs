//! The OCI image of `cargo xtask dist`, loaded into podman and run as
//! deploy/kubernetes's DaemonSet runs it: not privileged, only the
//! capabilities the manifest adds, the host's PID, network and cgroup
//! namespaces, the cgroup tree read-only, a read-only root filesystem and
//! the configuration mounted as a ConfigMap directory. It catches a forged
//! answer in a lab namespace, and `/healthz` stays 200 through the attack.
//!
//! Run as root, serially (the container loads pinwatch's programs):
//!     cargo test -p pinwatch-integration-tests --test oci -- --test-threads=1
use std::{fs, net::IpAddr, os::unix::fs::symlink, path::Path, time::Duration};

use pinwatch_integration_tests::{
    ALERT_TIMEOUT, DNS_V4, Dist, DnsRecords, Dnsmasq, Lab, Podman, dig, free_loopback_addr, http,
    poll, require_root, workspace_root,
};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

const DB_HOST: &str = "db.lab.test";
const FORGED: &str = "203.0.113.66";

/// The pinwatch container of the DaemonSet in deploy/kubernetes.
fn manifest_container() -> Yaml {
    let text =
        fs::read_to_string(workspace_root().join("deploy/kubernetes/daemonset.yaml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    docs[0]["spec"]["template"]["spec"]["containers"][0].clone()
}

fn manifest_capabilities(container: &Yaml) -> Vec<String> {
    let capabilities = &container["securityContext"]["capabilities"];
    assert_eq!(capabilities["drop"][0].as_str(), Some("ALL"));
    capabilities["add"]
        .as_vec()
        .expect("the manifest adds capabilities")
        .iter()
        .map(|c| c.as_str().expect("capability names").to_owned())
        .collect()
}

/// deploy/kubernetes/pinwatch.toml pointed at the lab: its database's
/// hostname, the lab's resolver trusted, metrics on a free loopback port.
fn lab_config(listen: &str) -> String {
    let text =
        fs::read_to_string(workspace_root().join("deploy/kubernetes/pinwatch.toml")).unwrap();
    let replace = |text: String, from: &str, to: &str| {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from:?} in the ConfigMap's file"
        );
        text.replacen(from, to, 1)
    };
    let text = replace(
        text,
        "hostnames = [\"cockroach.prod.internal\"]",
        &format!("hostnames = [\"{DB_HOST}\"]"),
    );
    let text = replace(
        text,
        "# trusted_resolvers = [\"10.96.0.10\", \"192.0.2.53\"]",
        &format!("trusted_resolvers = [\"{DNS_V4}\"]"),
    );
    replace(
        text,
        "listen = \"0.0.0.0:9464\"",
        &format!("listen = \"{listen}\""),
    )
}

/// A ConfigMap volume as the kubelet lays it out.
fn configmap_dir(root: &Path, text: &str) {
    let generation = root.join("..2026_12_01_00_00_00.000000001");
    fs::create_dir_all(&generation).unwrap();
    fs::write(generation.join("pinwatch.toml"), text).unwrap();
    symlink("..2026_12_01_00_00_00.000000001", root.join("..data")).unwrap();
    symlink("..data/pinwatch.toml", root.join("pinwatch.toml")).unwrap();
}

/// `--ulimit=NAME=SOFT:HARD` with this process's limits.
fn ulimit(resource: libc::__rlimit_resource_t, name: &str) -> String {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(resource, &mut limit) }, 0);
    let show = |value: libc::rlim_t| {
        if value == libc::RLIM_INFINITY {
            "-1".to_owned()
        } else {
            value.to_string()
        }
    };
    format!(
        "--ulimit={name}={}:{}",
        show(limit.rlim_cur),
        show(limit.rlim_max)
    )
}

#[test]
fn the_image_run_as_the_daemonset_catches_a_forged_answer_and_stays_healthy() {
    require_root();
    let dist = Dist::built();
    let container = manifest_container();
    let capabilities = manifest_capabilities(&container);
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    let args: Vec<String> = container["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();

    let podman = Podman::new();
    let image = podman.load(&dist.oci());
    let inspect = podman
        .command(&["image", "inspect", &image])
        .output()
        .unwrap();
    let inspect: Value =
        serde_json::from_slice(&inspect.stdout).expect("podman image inspect prints JSON");
    assert_eq!(
        inspect[0]["Config"]["Entrypoint"],
        serde_json::json!(["/usr/bin/pinwatch"]),
        "{inspect}"
    );
    assert_eq!(
        inspect[0]["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(1),
        "FROM scratch: one layer"
    );

    let lab = Lab::new();
    let forged: IpAddr = FORGED.parse().unwrap();
    let _dnsmasq = Dnsmasq::start(&lab, &DnsRecords::new().host(DB_HOST, forged));
    let config = tempfile::tempdir().unwrap();
    let metrics = free_loopback_addr();
    configmap_dir(config.path(), &lab_config(&metrics.to_string()));

    let mut run_args: Vec<String> = [
        "--rm",
        "--pid=host",
        "--network=host",
        "--cgroupns=host",
        "--read-only",
        "--user=0:0",
        "--security-opt=no-new-privileges",
        "--cap-drop=ALL",
        "--volume=/sys/fs/cgroup:/sys/fs/cgroup:ro",
        "--tmpfs=/run/pinwatch:rw,size=1m,mode=0755",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // The hybrid cgroup layout needs explicit limits: this process's own
    // open files, and a modest process count (runc cannot raise it to
    // this process's).
    run_args.push(ulimit(libc::RLIMIT_NOFILE, "nofile"));
    run_args.push("--ulimit=nproc=4096:4096".to_owned());
    run_args.extend(capabilities.iter().map(|c| format!("--cap-add=CAP_{c}")));
    // The manifest's seccomp profile, as the kubelet would ask for it.
    match container["securityContext"]["seccompProfile"]["type"].as_str() {
        Some("Unconfined") => run_args.push("--security-opt=seccomp=unconfined".to_owned()),
        Some("RuntimeDefault") | None => {}
        Some(other) => panic!("seccompProfile {other} is not one this test knows"),
    }
    run_args.push(format!(
        "--volume={}:/etc/pinwatch:ro",
        config.path().display()
    ));
    run_args.push(image.clone());
    run_args.extend(args);
    let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let mut daemon = podman.run_foreground("pwt-oci-pinwatch", &run_args, "pinwatch ready");

    let ready = poll(Duration::from_secs(10), || {
        (http(metrics, "GET", "/readyz").status == 200).then_some(())
    });
    assert!(
        ready.is_some(),
        "/readyz never answered 200:\n{}",
        daemon.stderr()
    );

    let answer = dig(&lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(answer.addresses(), [forged], "{}", answer.raw);
    let alert = poll(ALERT_TIMEOUT, || {
        daemon.stdout().lines().find_map(|line| {
            let alert: Value = serde_json::from_str(line).ok()?;
            (alert["event"]["action"] == "dns-answer-diverged").then_some(alert)
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no dns-answer-diverged on the container's stdout:\n{}\nstderr:\n{}",
            daemon.stdout(),
            daemon.stderr()
        )
    });
    assert_eq!(alert["dns"]["question"]["name"], DB_HOST, "{alert}");
    assert_eq!(alert["pinwatch"]["database"], "orders", "{alert}");

    // During the attack (a second forged answer on its way), liveness holds.
    let again = dig(&lab.client, DNS_V4, DB_HOST, "A");
    assert_eq!(again.addresses(), [forged]);
    let health = http(metrics, "GET", "/healthz");
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(health.body.starts_with("ok: "), "{}", health.body);
    assert_eq!(http(metrics, "GET", "/readyz").status, 200);

    assert_eq!(
        daemon.stop(),
        Some(0),
        "pinwatch in the container did not stop cleanly:\n{}",
        daemon.stderr()
    );
}
