//! The SIEM ingestion examples in config/ (Filebeat, Vector) stay valid and
//! keep reading the file the example pinwatch configuration writes to.
//!
//! Neither Filebeat nor Vector runs here (no Debian package, no registry
//! that ships them), so this checks what can be checked without them: each
//! file parses, names the alert file of `config/pinwatch.toml`, and sets the
//! options that make the alert lines arrive as ECS objects. No root needed.
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn read(name: &str) -> String {
    let path = config_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The alert file the example configuration names (commented out there,
/// since its default sink is stdout) and the README documents.
fn documented_alert_path() -> String {
    let text = read("pinwatch.toml");
    let line = text
        .lines()
        .find_map(|line| line.trim_start_matches('#').trim().strip_prefix("path = "))
        .expect("config/pinwatch.toml documents [alerts] path");
    let path: String = toml::from_str::<toml::Value>(&format!("path = {line}"))
        .expect("the documented path is a TOML string")["path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(path, "/var/log/pinwatch/alerts.ndjson");
    path
}

#[test]
fn filebeat_example_reads_the_alert_file_with_the_ndjson_parser() {
    let docs = YamlLoader::load_from_str(&read("filebeat.yml")).expect("filebeat.yml is YAML");
    let doc = &docs[0];
    let inputs = doc["filebeat.inputs"]
        .as_vec()
        .expect("filebeat.inputs is a list");
    assert_eq!(inputs.len(), 1, "{inputs:?}");
    let input = &inputs[0];
    assert_eq!(input["type"].as_str(), Some("filestream"));
    assert!(
        input["id"].as_str().is_some_and(|id| !id.is_empty()),
        "filestream needs an id"
    );
    let paths: Vec<&str> = input["paths"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(paths, [documented_alert_path()]);

    let parsers = input["parsers"].as_vec().expect("parsers is a list");
    let ndjson = parsers
        .iter()
        .map(|parser| &parser["ndjson"])
        .find(|ndjson| !ndjson.is_badvalue())
        .expect("an ndjson parser");
    assert_eq!(
        ndjson["target"].as_str(),
        Some(""),
        "fields at the event's root"
    );
    assert_eq!(
        ndjson["overwrite_keys"].as_bool(),
        Some(true),
        "pinwatch's @timestamp wins"
    );
    assert_eq!(
        ndjson["add_error_key"].as_bool(),
        Some(true),
        "bad lines are flagged, not dropped"
    );

    let outputs: Vec<&str> = doc
        .as_hash()
        .unwrap()
        .keys()
        .filter_map(Yaml::as_str)
        .filter(|key| key.starts_with("output."))
        .collect();
    assert_eq!(
        outputs,
        ["output.elasticsearch"],
        "Filebeat takes exactly one output"
    );
}

#[test]
fn vector_example_parses_the_alert_lines_as_json() {
    let doc: toml::Table = toml::from_str(&read("vector.toml")).expect("vector.toml is TOML");
    let source = &doc["sources"]["pinwatch_alerts"];
    assert_eq!(source["type"].as_str(), Some("file"));
    let include: Vec<&str> = source["include"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(include, [documented_alert_path()]);

    let remap = &doc["transforms"]["pinwatch_ecs"];
    assert_eq!(remap["type"].as_str(), Some("remap"));
    assert_eq!(
        remap["inputs"].as_array().unwrap()[0].as_str(),
        Some("pinwatch_alerts")
    );
    let program = remap["source"].as_str().unwrap();
    assert!(
        program.contains("parse_json!(string!(.message))"),
        "{program}"
    );
    assert_eq!(
        remap["reroute_dropped"].as_bool(),
        Some(true),
        "bad lines are not lost"
    );

    let sinks = doc["sinks"].as_table().unwrap();
    assert_eq!(sinks.len(), 1, "{sinks:?}");
    let sink = sinks.values().next().unwrap();
    let inputs: Vec<&str> = sink["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(inputs, ["pinwatch_ecs", "pinwatch_ecs.dropped"]);
}
