//! The README's kernel table, generated from what each VM's daemon
//! reported (`pinwatch status --json`), so it says what was measured.
use std::{fs, path::Path};

use anyhow::{Context, bail};
use serde_json::Value;

use super::{
    PORTABILITY_SUBSET,
    kernels::{SERIES, Series},
};

const BEGIN: &str = "<!-- vmtest:kernel-table -->";
const END: &str = "<!-- /vmtest:kernel-table -->";
const README: &str = "README.md";

/// One kernel's status as its VM's daemon reported it, and what its tests
/// printed.
pub struct Measured {
    series: &'static str,
    debian: &'static str,
    release: String,
    status: Value,
    /// The VM's console (empty before the run wrote it).
    console: String,
}

/// The subset's tests the console does not show passing (libtest's
/// `test NAME ... ok`).
pub fn not_passed(console: &str) -> Vec<&'static str> {
    PORTABILITY_SUBSET
        .iter()
        .filter(|t| {
            !console
                .lines()
                .any(|l| l == format!("test {} ... ok", t.test))
        })
        .map(|t| t.test)
        .collect()
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
            console: fs::read_to_string(results.join("console.log")).unwrap_or_default(),
        })
    }

    /// Healthy, or degraded with a reason, one for each kernel feature
    /// pinwatch does without; every program attached or reported with why
    /// not.
    pub fn check(&self) -> Result<(), String> {
        let health = self.status["health"]["status"].as_str().unwrap_or_default();
        let reasons = self.reasons();
        match health {
            "healthy" if reasons.is_empty() => {}
            "degraded" if !reasons.is_empty() => {}
            other => return Err(format!("health {other:?} with reasons {reasons:?}")),
        }
        for name in self.lacking() {
            if !reasons
                .iter()
                .any(|r| r.contains(&format!(" lacks {name}: ")))
            {
                return Err(format!(
                    "the kernel lacks {name} but no health reason says so: {reasons:?}"
                ));
            }
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
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            self.series,
            self.debian,
            self.release,
            hooks.join(", "),
            self.rules(),
            or_none(&self.reasons()),
        )
    }

    /// The features the probes did not find.
    fn lacking(&self) -> Vec<String> {
        self.status["kernel"]["features"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["available"] == false)
            .filter_map(|f| f["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// What the subset's tests showed working on this kernel.
    fn rules(&self) -> String {
        let missing = not_passed(&self.console);
        let covers = |passed: bool| -> Vec<&str> {
            PORTABILITY_SUBSET
                .iter()
                .filter(|t| missing.contains(&t.test) != passed)
                .map(|t| t.covers)
                .collect()
        };
        if missing.is_empty() {
            format!("all: {} passed", covers(true).join(", "))
        } else {
            format!(
                "passed: {}; not shown: {}",
                or_none(
                    &covers(true)
                        .iter()
                        .map(|c| (*c).to_owned())
                        .collect::<Vec<_>>()
                ),
                covers(false).join(", ")
            )
        }
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

const HEADER: &str = "| series | shipped by | kernel measured | hooks attached | shown working in the VM | degraded (health.reasons) |\n| --- | --- | --- | --- | --- | --- |";

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
        // Debian's archive keeps only a series' newest upload, so a clean
        // run may measure a later release than the README names: that
        // alone does not make the row wrong.
        if old.as_deref().map(|o| without_release(series.name, o))
            != Some(without_release(series.name, &row))
        {
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

/// `row` with each kernel release of `series` (`6.1.0-57-amd64`) written
/// `6.1.*`; the series' own column (`| 6.1 |`) stays.
fn without_release(series: &str, row: &str) -> String {
    let prefix = format!("{series}.");
    let mut out = String::with_capacity(row.len());
    let mut rest = row;
    while let Some(at) = rest.find(&prefix) {
        // A release starts a word: not the tail of another number.
        let starts_word = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '.');
        out.push_str(&rest[..at]);
        let tail = &rest[at + prefix.len()..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '+'))
            .unwrap_or(tail.len());
        if starts_word && len > 0 {
            out.push_str(&prefix);
            out.push('*');
            rest = &tail[len..];
        } else {
            out.push_str(&prefix);
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_upload_of_the_same_series_matches_the_row() {
        let old =
            "| 6.1 | Debian 12 | 6.1.0-57-amd64 | tc | all | kernel 6.1.0-57-amd64 lacks tcx |";
        let new =
            "| 6.1 | Debian 12 | 6.1.0-58-amd64 | tc | all | kernel 6.1.0-58-amd64 lacks tcx |";
        assert_eq!(without_release("6.1", old), without_release("6.1", new));
        assert_eq!(
            without_release("6.1", old),
            "| 6.1 | Debian 12 | 6.1.* | tc | all | kernel 6.1.* lacks tcx |"
        );
        // What the kernel did still counts.
        let other = "| 6.1 | Debian 12 | 6.1.0-58-amd64 | tc | all | nothing |";
        assert_ne!(without_release("6.1", old), without_release("6.1", other));
    }

    fn measured(console: String, status: Value) -> Measured {
        Measured {
            series: "6.1",
            debian: "Debian 12 (bookworm)",
            release: "6.1.0-57-amd64".to_owned(),
            status,
            console,
        }
    }

    fn passing(except: &str) -> String {
        PORTABILITY_SUBSET
            .iter()
            .filter(|t| t.test != except)
            .map(|t| format!("test {} ... ok\n", t.test))
            .collect()
    }

    #[test]
    fn the_working_column_names_what_the_subset_showed() {
        let all = measured(passing(""), Value::Null);
        assert!(not_passed(&all.console).is_empty());
        assert!(all.rules().starts_with("all: programs, answer, connect, "));
        let fragments = "fragmented_forged_reply_on_a_new_interface_is_reported";
        let one_short = measured(passing(fragments), Value::Null);
        assert_eq!(not_passed(&one_short.console), [fragments]);
        assert!(
            one_short.rules().ends_with("; not shown: fragments"),
            "{}",
            one_short.rules()
        );
    }

    #[test]
    fn a_missing_feature_needs_its_reason() {
        let status = |reasons: &[&str]| {
            serde_json::json!({
                "health": {"status": "degraded", "reasons": reasons},
                "kernel": {"features": [{"name": "tcx", "available": false}]},
                "programs": (0..9).map(|i| serde_json::json!({"name": format!("p{i}"), "attached": true})).collect::<Vec<_>>(),
            })
        };
        let named = measured(
            String::new(),
            status(&["kernel 6.1.0-57-amd64 lacks tcx: legacy tc"]),
        );
        assert_eq!(named.check(), Ok(()));
        let unnamed = measured(String::new(), status(&["something else"]));
        assert!(unnamed.check().is_err());
    }
}
