//! Debian's kernels, fetched once and cached under target/vmtest/kernels/.
//!
//! `apt-get download` runs against a private sources list and private
//! package lists (target/vmtest/apt/), so the machine's apt configuration,
//! lists and caches are never touched. The newest `-amd64-unsigned` image of
//! the series in the suite (and its security updates) is taken, unpacked
//! with `dpkg-deb -x`; the modules come with it, which virtme-ng finds
//! beside the image.
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};

use crate::shell;

/// A kernel series the matrix boots.
pub struct Series {
    pub name: &'static str,
    /// The Debian release that ships it.
    pub debian: &'static str,
    suite: &'static str,
}

pub const SERIES: [Series; 3] = [
    Series {
        name: "5.10",
        debian: "Debian 11 (bullseye)",
        suite: "bullseye",
    },
    Series {
        name: "6.1",
        debian: "Debian 12 (bookworm)",
        suite: "bookworm",
    },
    Series {
        name: "6.12",
        debian: "Debian 13 (trixie)",
        suite: "trixie",
    },
];

pub fn series(name: &str) -> anyhow::Result<&'static Series> {
    SERIES.iter().find(|s| s.name == name).with_context(|| {
        let known: Vec<&str> = SERIES.iter().map(|s| s.name).collect();
        format!(
            "unknown kernel series {name}; the matrix has {}",
            known.join(", ")
        )
    })
}

const ARCHIVE: &str = "http://deb.debian.org/debian";
const SECURITY: &str = "http://deb.debian.org/debian-security";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The unpacked kernel of `series`: its image, fetched on first use.
pub fn image(series: &Series) -> anyhow::Result<PathBuf> {
    let root = Path::new("target/vmtest/kernels").join(series.name);
    if let Some(image) = find_image(&root.join("root")) {
        return Ok(image);
    }
    let package = newest_package(series)?;
    let download = root.join("download");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&download)?;
    let download = download.canonicalize()?;
    let mut args = apt_options(series)?;
    args.extend(["download".into(), package.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    shell::run_in(&download, "apt-get", &args)?;
    let deb = fs::read_dir(&download)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let unpacked = root.join("root");
    shell::run(
        "dpkg-deb",
        &["-x", &deb.to_string_lossy(), &unpacked.to_string_lossy()],
    )?;
    fs::remove_file(&deb)?;
    fs::write(root.join("package"), format!("{package}\n"))?;
    find_image(&unpacked).with_context(|| format!("{package} holds no /boot/vmlinuz-*"))
}

/// The Debian package the cached kernel came from.
pub fn package(series: &Series) -> String {
    let path = Path::new("target/vmtest/kernels")
        .join(series.name)
        .join("package");
    fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn find_image(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root.join("boot"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}

/// apt options that keep every file apt reads or writes under
/// target/vmtest/apt/<suite>/.
fn apt_options(series: &Series) -> anyhow::Result<Vec<String>> {
    let dir = Path::new("target/vmtest/apt").join(series.suite);
    fs::create_dir_all(dir.join("lists/partial"))?;
    fs::create_dir_all(dir.join("cache/archives/partial"))?;
    let dir = dir.canonicalize()?;
    let sources = dir.join("sources.list");
    fs::write(
        &sources,
        format!(
            "deb [signed-by={KEYRING}] {ARCHIVE} {suite} main\n\
             deb [signed-by={KEYRING}] {SECURITY} {suite}-security main\n",
            suite = series.suite
        ),
    )?;
    let d = dir.display();
    Ok(vec![
        "-q".into(),
        "-o".into(),
        format!("Dir::Etc::sourcelist={}", sources.display()),
        "-o".into(),
        "Dir::Etc::sourceparts=-".into(),
        "-o".into(),
        format!("Dir::State::Lists={d}/lists"),
        "-o".into(),
        format!("Dir::Cache={d}/cache"),
        "-o".into(),
        "Acquire::Languages=none".into(),
        // Package lists only: the appstream metadata a desktop setup adds
        // is not needed to download one package.
        "-o".into(),
        "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
        "-o".into(),
        "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
        "-o".into(),
        "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".into(),
    ])
}

/// The newest `linux-image-SERIES.*-amd64-unsigned` the suite holds.
fn newest_package(series: &Series) -> anyhow::Result<String> {
    let options = apt_options(series)?;
    let mut update = options.clone();
    update.push("update".into());
    let update: Vec<&str> = update.iter().map(String::as_str).collect();
    shell::run("apt-get", &update)?;
    let mut names = options;
    names.extend(["pkgnames".into(), format!("linux-image-{}.", series.name)]);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let listed = shell::output("apt-cache", &names)?;
    let newest = listed
        .lines()
        .map(str::trim)
        .filter(|name| is_generic_unsigned(name, series.name))
        .max_by(|a, b| version_key(a).cmp(&version_key(b)));
    match newest {
        Some(name) => Ok(name.to_owned()),
        None => bail!(
            "{} lists no linux-image-{}.*-amd64-unsigned package",
            series.suite,
            series.name
        ),
    }
}

/// `linux-image-5.10.0-46-amd64-unsigned`, `linux-image-6.12.117+deb13-amd64-unsigned`:
/// the generic flavour, not cloud or rt, and not a backport from another
/// release (`6.1.0-0.deb11.52`).
fn is_generic_unsigned(name: &str, series: &str) -> bool {
    let Some(version) = name
        .strip_prefix("linux-image-")
        .and_then(|rest| rest.strip_suffix("-amd64-unsigned"))
    else {
        return false;
    };
    version.starts_with(&format!("{series}."))
        && !version.contains("cloud")
        && !version.contains("-rt")
        && !version.contains(".deb")
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.+".contains(c))
}

/// The numbers in a name, in order, for comparing versions.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .filter_map(|part| part.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_generic_image_of_the_series() {
        assert!(is_generic_unsigned(
            "linux-image-5.10.0-46-amd64-unsigned",
            "5.10"
        ));
        assert!(is_generic_unsigned(
            "linux-image-6.12.117+deb13-amd64-unsigned",
            "6.12"
        ));
        assert!(!is_generic_unsigned(
            "linux-image-5.10.0-46-cloud-amd64-unsigned",
            "5.10"
        ));
        assert!(!is_generic_unsigned(
            "linux-image-5.10.0-46-rt-amd64-unsigned",
            "5.10"
        ));
        assert!(!is_generic_unsigned(
            "linux-image-6.1.0-0.deb11.52-amd64-unsigned",
            "6.1"
        ));
        assert!(!is_generic_unsigned(
            "linux-image-6.12.117+deb13-amd64-unsigned",
            "6.1"
        ));
        assert!(!is_generic_unsigned("linux-image-6.1.0-50-amd64", "6.1"));
    }

    #[test]
    fn newest_by_its_numbers() {
        let newest = [
            "linux-image-5.10.0-9-amd64-unsigned",
            "linux-image-5.10.0-46-amd64-unsigned",
        ]
        .into_iter()
        .max_by(|a, b| version_key(a).cmp(&version_key(b)));
        assert_eq!(newest, Some("linux-image-5.10.0-46-amd64-unsigned"));
    }
}
