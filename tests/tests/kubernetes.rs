//! deploy/kubernetes: `kubectl kustomize` renders it, every manifest passes
//! `kubernetes-validate --strict` and yamllint, and the DaemonSet says what
//! README "On Kubernetes" promises: not privileged, the three capabilities,
//! host namespaces, read-only mounts, probes on /healthz and /readyz,
//! resources, every node. No root needed.
//!     cargo test -p pinwatch-integration-tests --test kubernetes
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use pinwatch_integration_tests::{Dist, workspace_root};
use yaml_rust2::{Yaml, YamlLoader};

fn venv_tool(name: &str) -> PathBuf {
    let path = workspace_root().join("target/venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: cargo xtask setup installs it",
        path.display()
    );
    path
}

fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`{} {}` failed ({}):\n{text}",
        program.display(),
        args.join(" "),
        out.status
    );
    text
}

fn kustomize(dir: &Path) -> String {
    run(
        Path::new("kubectl"),
        &["kustomize", dir.to_str().expect("UTF-8 path")],
    )
}

/// Validates rendered manifests with kubernetes-validate and yamllint.
fn validate(rendered: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    fs::write(&file, rendered).unwrap();
    let file = file.to_str().unwrap();
    let report = run(&venv_tool("kubernetes-validate"), &["--strict", file]);
    assert!(
        !report.contains("ERROR") && !report.contains("failed"),
        "{report}"
    );
    // kubectl writes block sequences unindented and no leading `---`.
    run(
        &venv_tool("yamllint"),
        &[
            "--strict",
            "-d",
            "{extends: default, rules: {document-start: disable, indentation: {indent-sequences: whatever}, line-length: {max: 120}}}",
            file,
        ],
    );
}

fn by_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

fn strs(yaml: &Yaml) -> Vec<&str> {
    yaml.as_vec()
        .map(|v| v.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn the_base_renders_validates_and_deploys_what_readme_says() {
    let base = workspace_root().join("deploy/kubernetes");
    run(
        &venv_tool("yamllint"),
        &[
            "--strict",
            "-c",
            "deploy/kubernetes/.yamllint.yaml",
            "deploy/kubernetes",
        ],
    );
    let rendered = kustomize(&base);
    validate(&rendered);
    let docs = YamlLoader::load_from_str(&rendered).unwrap();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "DaemonSet",
        "Service",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    assert_eq!(
        by_kind(&docs, "Namespace")["metadata"]["name"].as_str(),
        Some("pinwatch")
    );
    for doc in docs
        .iter()
        .filter(|d| d["kind"].as_str() != Some("Namespace"))
    {
        assert_eq!(
            doc["metadata"]["namespace"].as_str(),
            Some("pinwatch"),
            "{doc:?}"
        );
    }

    let ds = by_kind(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    assert_eq!(
        pod["priorityClassName"].as_str(),
        Some("system-node-critical")
    );
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    let tolerations = pod["tolerations"].as_vec().unwrap();
    assert!(
        tolerations
            .iter()
            .any(|t| t["operator"].as_str() == Some("Exists") && t["key"].is_badvalue()),
        "a toleration of every taint: {tolerations:?}"
    );

    let containers = pod["containers"].as_vec().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let image = c["image"].as_str().unwrap();
    assert_eq!(
        image,
        format!("pinwatch:{}", Dist::version_from_metadata()),
        "the image tag follows the Cargo version"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(
        strs(&sc["capabilities"]["add"]),
        ["BPF", "NET_ADMIN", "PERFMON"]
    );
    assert_eq!(sc["runAsUser"].as_i64(), Some(0));
    assert_eq!(sc["seccompProfile"]["type"].as_str(), Some("Unconfined"));

    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        c["startupProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(
            c[probe]["httpGet"]["port"].as_str(),
            Some("metrics"),
            "{probe}"
        );
    }
    assert_eq!(
        c["ports"][0]["containerPort"].as_i64(),
        Some(9464),
        "the [metrics] listen port"
    );

    let resources = &c["resources"];
    for (side, key) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "cpu"),
        ("limits", "memory"),
    ] {
        assert!(
            resources[side][key].as_str().is_some(),
            "resources.{side}.{key}"
        );
    }
    // Above the flood's peak (B6 40.9 MiB + B9 43.5 MiB of tables).
    assert_eq!(resources["limits"]["memory"].as_str(), Some("192Mi"));

    let mounts = c["volumeMounts"].as_vec().unwrap();
    let mount = |path: &str| {
        mounts
            .iter()
            .find(|m| m["mountPath"].as_str() == Some(path))
            .unwrap_or_else(|| panic!("no mount at {path}: {mounts:?}"))
    };
    let config = mount("/etc/pinwatch");
    assert_eq!(config["readOnly"].as_bool(), Some(true));
    assert!(
        config["subPath"].is_badvalue(),
        "a subPath mount never updates"
    );
    assert_eq!(mount("/sys/fs/cgroup")["readOnly"].as_bool(), Some(true));
    mount("/run/pinwatch");
    let volumes = pod["volumes"].as_vec().unwrap();
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    assert_eq!(
        volume(config["name"].as_str().unwrap())["configMap"]["name"].as_str(),
        Some("pinwatch-config")
    );
    assert_eq!(
        volume("cgroup")["hostPath"]["path"].as_str(),
        Some("/sys/fs/cgroup")
    );
    // The pins outlive the pod: the node's bpffs, writable.
    let bpffs = mount("/sys/fs/bpf");
    assert_ne!(bpffs["readOnly"].as_bool(), Some(true));
    assert_eq!(
        volume(bpffs["name"].as_str().unwrap())["hostPath"]["path"].as_str(),
        Some("/sys/fs/bpf")
    );

    // The ConfigMap carries a file pinwatch accepts, watched, alerts on stdout.
    let configmap = by_kind(&docs, "ConfigMap");
    assert_eq!(
        configmap["metadata"]["name"].as_str(),
        Some("pinwatch-config")
    );
    let toml = configmap["data"]["pinwatch.toml"].as_str().unwrap();
    assert!(toml.contains("\nwatch = true\n"), "{toml}");
    assert!(toml.contains("\nsink = \"stdout\"\n"), "{toml}");
    assert!(toml.contains("\nlisten = \"0.0.0.0:9464\"\n"), "{toml}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pinwatch.toml");
    fs::write(&file, toml).unwrap();
    let bin = pinwatch_integration_tests::pinwatch_bin();
    run(&bin, &["check-config", "-c", file.to_str().unwrap()]);

    let service = by_kind(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"].as_i64(), Some(9464));
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/name"].as_str(),
        Some("pinwatch")
    );
}

#[test]
fn the_servicemonitor_component_adds_a_scrape_of_the_service() {
    // An operator's overlay beside the base (kustomize takes relative
    // paths only): target/<temp>/ → ../../deploy/kubernetes.
    let overlay = tempfile::Builder::new()
        .prefix("pwt-overlay-")
        .tempdir_in(workspace_root().join("target"))
        .unwrap();
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
        resources:\n  - ../../deploy/kubernetes\n\
        components:\n  - ../../deploy/kubernetes/components/servicemonitor\n";
    fs::write(overlay.path().join("kustomization.yaml"), kustomization).unwrap();
    let rendered = kustomize(overlay.path());
    // kubernetes-validate has no schema for the Prometheus Operator's CRD
    // (it warns and passes it); the built-in kinds are still checked.
    validate(&rendered);
    let docs = YamlLoader::load_from_str(&rendered).unwrap();
    let monitor = by_kind(&docs, "ServiceMonitor");
    assert_eq!(monitor["metadata"]["namespace"].as_str(), Some("pinwatch"));
    let service = by_kind(&docs, "Service");
    let selector = &monitor["spec"]["selector"]["matchLabels"];
    for (key, value) in selector.as_hash().unwrap() {
        assert_eq!(
            &service["metadata"]["labels"][key.as_str().unwrap()],
            value,
            "the ServiceMonitor selects the metrics Service"
        );
    }
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"].as_str(),
        service["spec"]["ports"][0]["name"].as_str()
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["path"].as_str(),
        Some("/metrics")
    );
}
