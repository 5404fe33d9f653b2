//! The OCI image archive: `FROM scratch`, the static binary and the example
//! configuration, entrypoint pinwatch. Built with buildah in a storage of
//! its own under target/ (vfs: works on any filesystem and needs no
//! overlay support), so nothing is pulled and no other image store is
//! touched.
use std::fs;

use anyhow::Context;

use super::{Release, path_str};
use crate::shell;

pub fn build(release: &Release) -> anyhow::Result<()> {
    let storage = release.target_dir.join("oci-build");
    let root = storage.join("root");
    let runroot = storage.join("run");
    let global: [&str; 6] = [
        "--storage-driver",
        "vfs",
        "--root",
        path_str(&root)?,
        "--runroot",
        path_str(&runroot)?,
    ];
    let buildah = |args: &[&str]| -> anyhow::Result<String> {
        let mut all = global.to_vec();
        all.extend(args);
        eprintln!("+ buildah {}", all.join(" "));
        shell::output_in(std::path::Path::new("."), "buildah", &all)
            .context("buildah (cargo xtask setup installs it)")
    };
    let container = buildah(&["from", "scratch"])?.trim().to_owned();
    let result = (|| {
        let package = release.package_dir();
        buildah(&[
            "copy",
            "--chown",
            "0:0",
            "--chmod",
            "0755",
            &container,
            path_str(&package.join("pinwatch"))?,
            "/usr/bin/pinwatch",
        ])?;
        buildah(&[
            "copy",
            "--chown",
            "0:0",
            "--chmod",
            "0644",
            &container,
            path_str(&package.join("pinwatch.toml"))?,
            "/etc/pinwatch/pinwatch.toml",
        ])?;
        let version = format!("org.opencontainers.image.version={}", release.version);
        buildah(&[
            "config",
            "--entrypoint",
            r#"["/usr/bin/pinwatch"]"#,
            "--cmd",
            r#"["run", "-c", "/etc/pinwatch/pinwatch.toml"]"#,
            "--label",
            "org.opencontainers.image.title=pinwatch",
            "--label",
            &version,
            "--label",
            "org.opencontainers.image.licenses=Apache-2.0",
            &container,
        ])?;
        let archive = release.dist_dir().join(release.oci());
        let destination = format!(
            "oci-archive:{}:pinwatch:{}",
            path_str(&archive)?,
            release.version
        );
        buildah(&["commit", "--format", "oci", &container, &destination])?;
        anyhow::Ok(())
    })();
    let removed = buildah(&["rm", &container]);
    result?;
    removed?;
    // The image is in the archive now; the build storage is not needed.
    // vfs layers are plain directories, so this frees them.
    let _ = buildah(&["rmi", "--all"]);
    fs::remove_dir_all(&storage).ok();
    Ok(())
}
