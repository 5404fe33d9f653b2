//! The README's kernel table, generated from what each VM's daemon
//! reported (`pinwatch status --json`), so it says what was measured.
use std::{fs, path::Path};

use anyhow::{Context, bail};
use serde_json::Value;

use super::kernels::{SERIES, Series};

const BEGIN: &str = "<!-- vmtest:kernel-table -->";
const END: &str = "<!-- /vmtest:kernel-table -->";
const README: &str = "README.md";

/// One kernel's status as its VM's daemon reported it.
pub struct Measured {
    series: &'static str,
    debian: &'static str,
    release: String,
    status: Value,
}

impl Measured {
    pub fn read(series: &'static Series, results: &Path) -> anyhow::Result<Measured> {
        let path = results.join("status.json");
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let status: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not status JSON: {text:?}", path.display()))?;
        let release = status["kernel"]["release"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(Measured {
            series: series.name,
            debian: series.debian,
            release,
            status,
        })
    }

    /// Healthy, or degraded with a reason; every program attached or
    /// reported with why not.
    pub fn check(&self) -> Result<(), String> {
        let health = self.status["health"]["status"].as_str().unwrap_or_default();
        let reasons = self.reasons();
        match health {
            "healthy" if reasons.is_empty() => {}
            "degraded" if !reasons.is_empty() => {}
            other => return Err(format!("health {other:?} with reasons {reasons:?}")),
        }
        let programs = self.status["programs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if programs.len() < 9 {
            return Err(format!(
                "{} programs reported, pinwatch has 9",
                programs.len()
            ));
        }
        for program in &programs {
            let interface_hook = program.get("interfaces").is_some();
            let attached = program["attached"].as_bool() == Some(true);
            if !attached && !interface_hook && program.get("error").is_none() {
                return Err(format!(
                    "program {} is neither attached nor reported with a reason",
                    program["name"]
                ));
            }
        }
        if !self.release.starts_with(self.series) {
            return Err(format!(
                "booted {:?}, not a {} kernel",
                self.release, self.series
            ));
        }
        Ok(())
    }

    fn reasons(&self) -> Vec<String> {
        strings(&self.status["health"]["reasons"])
    }

    /// The table row.
    fn row(&self) -> String {
        let programs = self.status["programs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut hooks: Vec<String> = Vec::new();
        for program in &programs {
            let kind = program["kind"].as_str().unwrap_or_default();
            let hook = if kind.starts_with("cgroup_skb/") {
                "cgroup_skb".to_owned()
            } else if kind.starts_with("cgroup/") {
                "cgroup sock_addr".to_owned()
            } else {
                kind.to_owned()
            };
            if program.get("error").is_none() && !hooks.contains(&hook) {
                hooks.push(hook);
            }
        }
        let substitutes: Vec<String> = self.status["kernel"]["features"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["available"] == false)
            .map(|f| {
                format!(
                    "no {}: {}",
                    f["name"].as_str().unwrap_or_default(),
                    f["fallback"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let reasons = self.reasons();
        let rules = if reasons.is_empty() {
            "all".to_owned()
        } else {
            "all but what the degraded column names".to_owned()
        };
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            self.series,
            self.debian,
            self.release,
            hooks.join(", "),
            rules,
            or_none(&[reasons, substitutes].concat()),
        )
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join("; ").replace('|', "\\|")
    }
}

const HEADER: &str = "| series | shipped by | kernel measured | hooks attached | rules | degraded, or done another way |\n| --- | --- | --- | --- | --- | --- |";

/// Compares the README's table with the results on disk, row by row for the
/// series that were measured; rewrites it with `update`.
pub fn check_readme(update: bool) -> anyhow::Result<()> {
    let readme = fs::read_to_string(README)?;
    let (Some(begin), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        bail!("{README} has no {BEGIN} … {END} section");
    };
    let current = &readme[begin + BEGIN.len()..end];
    let mut rows = Vec::new();
    let mut stale = Vec::new();
    for series in &SERIES {
        let results = Path::new("target/vmtest/results").join(series.name);
        let old = current
            .lines()
            .find(|line| line.starts_with(&format!("| {} |", series.name)))
            .map(str::to_owned);
        let row = match Measured::read(series, &results) {
            Ok(measured) => measured.row(),
            // Not measured in this run: the row stays as it was.
            Err(_) => match old.clone() {
                Some(row) => row,
                None => continue,
            },
        };
        if old.as_deref() != Some(row.as_str()) {
            stale.push(series.name);
        }
        rows.push(row);
    }
    if stale.is_empty() {
        return Ok(());
    }
    if !update {
        bail!(
            "the rows for {} differ from what the VMs measured; run `cargo xtask vmtest --kernel … --update-readme`",
            stale.join(", ")
        );
    }
    let table = format!("\n{HEADER}\n{}\n", rows.join("\n"));
    let updated = format!(
        "{}{table}{}",
        &readme[..begin + BEGIN.len()],
        &readme[end..]
    );
    fs::write(README, updated)?;
    eprintln!(
        "vmtest: README kernel table updated for {}",
        stale.join(", ")
    );
    Ok(())
}
