//! Text → [`ConfigFile`]: YAML syntax, shapes and unknown keys, section by section.
//!
//! Two readers work together: saphyr's marked tree gives every node's line and
//! column, and serde (through `serde_path_to_error`) gives typed values with the
//! exact path that failed. Each section, each user and each rule is read on its
//! own, so every broken piece is reported at once.

use std::collections::BTreeMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde::de::DeserializeOwned;
use serde_norway::Value;
use serde_path_to_error::Segment;

use super::diag::{Diagnostics, Positions};
use super::file::{ConfigFile, TOP_LEVEL_KEYS};

/// Read `text` (named `file` in messages) into the file model; problems go to the returned diagnostics.
pub fn load(file: &str, text: &str) -> (ConfigFile, Diagnostics) {
    let mut diags = match positions(file, text) {
        Ok(positions) => Diagnostics::new(file, positions),
        Err(diags) => return (unreadable(), *diags),
    };
    match top_level(&mut diags, text) {
        Some(map) => (sections(&mut diags, map), diags),
        None => (unreadable(), diags),
    }
}

/// The file model of a file that could not be read as a mapping.
fn unreadable() -> ConfigFile {
    ConfigFile {
        unreadable: true,
        ..Default::default()
    }
}

/// Every node's line and column, or the YAML syntax error.
fn positions(file: &str, text: &str) -> Result<Positions, Box<Diagnostics>> {
    let mut positions = Positions::default();
    match MarkedYaml::load_from_str(text) {
        Ok(docs) => {
            if let Some(doc) = docs.first() {
                index_node(doc, String::new(), None, &mut positions);
            }
            Ok(positions)
        }
        Err(e) => {
            let mut diags = Diagnostics::new(file, positions);
            let m = e.marker();
            diags.error_at(
                m.line(),
                m.col() + 1,
                format!("YAML syntax error: {}", e.info()),
            );
            Err(Box::new(diags))
        }
    }
}

/// The top-level mapping, or `None` (with the error reported).
fn top_level(diags: &mut Diagnostics, text: &str) -> Option<serde_norway::Mapping> {
    let root: Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let (line, col) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            diags.error_at(
                line,
                col,
                format!("YAML error: {}", strip_location(&e.to_string())),
            );
            return None;
        }
    };
    match root {
        Value::Mapping(m) => Some(m),
        Value::Null => {
            diags.error("", "the file is empty; see config/reference.yaml");
            None
        }
        _ => {
            diags.error(
                "",
                "the file must be a mapping of keys (listen, portal, rules, ...)",
            );
            None
        }
    }
}

/// Read each top-level section on its own; a section with an error is named in `failed`.
fn sections(diags: &mut Diagnostics, map: serde_norway::Mapping) -> ConfigFile {
    let mut out = ConfigFile::default();
    for (key, value) in map {
        let Some(key) = key.as_str().map(str::to_owned) else {
            diags.error("", "top-level keys must be strings");
            continue;
        };
        let before = diags.items.len();
        let d = &mut *diags;
        match key.as_str() {
            "listen" => out.listen = read(d, "listen", value),
            "threads" => out.threads = read(d, "threads", value),
            "tls" => out.tls = read(d, "tls", value),
            "admin_listen" => out.admin_listen = read(d, "admin_listen", value),
            "trusted_proxies" => {
                out.trusted_proxies = read_opt_seq(d, "trusted_proxies", value);
            }
            "portal" => out.portal = read(d, "portal", value),
            "served" => out.served = read(d, "served", value),
            "secrets" => out.secrets = read(d, "secrets", value),
            "session" => out.session = read(d, "session", value),
            "store" => out.store = read(d, "store", value),
            "users" => out.users = read_map(d, "users", value),
            "authenticators" => out.authenticators = read_map(d, "authenticators", value),
            "rate_limit" => out.rate_limit = read(d, "rate_limit", value),
            "upstreams" => out.upstreams = read_map(d, "upstreams", value),
            "rules" => out.rules = read_seq(d, "rules", value),
            "log" => out.log = read(d, "log", value),
            other => d.key_error(
                other,
                format!(
                    "unknown key \"{other}\" (expected one of: {})",
                    TOP_LEVEL_KEYS.join(", ")
                ),
            ),
        }
        if diags.items.len() > before {
            out.failed.push(key);
        }
    }
    out
}

/// Deserialize one value; on failure, report the innermost path that failed.
fn read<T: DeserializeOwned>(diags: &mut Diagnostics, path: &str, value: Value) -> Option<T> {
    if value.is_null() {
        return None;
    }
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            report(diags, path, e);
            None
        }
    }
}

fn report(diags: &mut Diagnostics, base: &str, e: serde_path_to_error::Error<serde_norway::Error>) {
    let mut path = base.to_string();
    for seg in e.path().iter() {
        match seg {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_key(&mut path, key),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    let message = friendly(&strip_location(&e.inner().to_string()));
    if let Some(field) = unknown_field(&message) {
        let mut key_path = path.clone();
        if !key_path.ends_with(&format!(".{field}")) && key_path != field {
            push_key(&mut key_path, &field);
        }
        diags.key_error(&key_path, message);
    } else {
        diags.error(&path, message);
    }
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// `unknown key "x" (...)` → `x`.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown key \"")?;
    rest.split('"').next().map(str::to_owned)
}

/// Reword serde's messages in the terms the config reference uses.
fn friendly(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected
            .trim_start_matches(", expected ")
            .replace("one of ", "one of: ")
            .replace('`', "");
        return format!("unknown key \"{field}\" (expected {expected})");
    }
    message.to_string()
}

/// serde_norway appends " at line L column C"; we print our own place.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// A mapping of named entries (users, upstreams, authenticator sets), each read on its own.
fn read_map<T: DeserializeOwned>(
    diags: &mut Diagnostics,
    path: &str,
    value: Value,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    match value {
        Value::Null => {}
        Value::Mapping(m) => {
            for (k, v) in m {
                let Some(name) = k.as_str().map(str::to_owned) else {
                    diags.error(path, "names must be strings");
                    continue;
                };
                let p = format!("{path}.{name}");
                // An entry with no body (`bob:`) means "all defaults" where the type allows it.
                let v = if v.is_null() {
                    Value::Mapping(Default::default())
                } else {
                    v
                };
                match serde_path_to_error::deserialize::<_, T>(v) {
                    Ok(item) => {
                        out.insert(name, item);
                    }
                    Err(e) => report(diags, &p, e),
                }
            }
        }
        _ => diags.error(path, "expected a mapping of names"),
    }
    out
}

/// A list whose items are read one by one; an item that fails leaves `None` in its place.
fn read_seq<T: DeserializeOwned>(
    diags: &mut Diagnostics,
    path: &str,
    value: Value,
) -> Vec<Option<T>> {
    match value {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let p = format!("{path}[{i}]");
                match serde_path_to_error::deserialize::<_, T>(v) {
                    Ok(item) => Some(item),
                    Err(e) => {
                        report(diags, &p, e);
                        None
                    }
                }
            })
            .collect(),
        _ => {
            diags.error(path, "expected a list");
            Vec::new()
        }
    }
}

fn read_opt_seq(diags: &mut Diagnostics, path: &str, value: Value) -> Vec<String> {
    read::<Vec<String>>(diags, path, value).unwrap_or_default()
}

/// Record the start of every node under its YAML path (`rules[2].upstream`).
fn index_node(
    node: &MarkedYaml<'_>,
    path: String,
    key: Option<(usize, usize)>,
    out: &mut Positions,
) {
    let here = (node.span.start.line(), node.span.start.col() + 1);
    match &node.data {
        YamlData::Mapping(m) => {
            for (k, v) in m.iter() {
                let Some(name) = scalar_text(k) else { continue };
                let mut p = path.clone();
                push_key(&mut p, &name);
                let kpos = (k.span.start.line(), k.span.start.col() + 1);
                index_node(v, p, Some(kpos), out);
            }
        }
        YamlData::Sequence(items) => {
            for (i, v) in items.iter().enumerate() {
                index_node(v, format!("{path}[{i}]"), None, out);
            }
        }
        _ => {}
    }
    // A null value (`key:` with nothing after it) has no useful span of its own.
    let here = if matches!(node.data, YamlData::Value(Scalar::Null)) {
        key.unwrap_or(here)
    } else {
        here
    };
    out.insert(path, here, key);
}

fn scalar_text(node: &MarkedYaml<'_>) -> Option<String> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
        YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        YamlData::Representation(s, _, _) => Some(s.to_string()),
        _ => None,
    }
}
