//! A policy's `[policies.config]` table, as the host hands it over (a JSON object), read with errors that name
//! the key at fault: `config.<key>: ...`, the form `kanban board check` shows the operator.
//!
//! Every built-in plugin reads its config through [`Config`] so that unknown keys and wrong types are refused
//! the same way everywhere. It never supplies a default on a type error: a wrong value is an error, not a
//! silent fallback.

use serde_json::{Map, Value};

/// A parsed config object whose keys are all known to the plugin.
#[derive(Debug, Clone, Default)]
pub struct Config {
    map: Map<String, Value>,
}

impl Config {
    /// Parse `json` (a JSON object; blank means `{}`) and refuse any key not in `known`.
    pub fn parse(json: &str, known: &[&str]) -> Result<Config, String> {
        if json.trim().is_empty() {
            return Ok(Config::default());
        }
        let value: Value =
            serde_json::from_str(json).map_err(|err| format!("config: not valid JSON: {err}"))?;
        let Value::Object(map) = value else {
            return Err(format!(
                "config: must be an object (a [policies.config] table), got {}",
                kind(&value)
            ));
        };
        if let Some(key) = map.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(format!("config.{key}: unknown key (known: {})", known.join(", ")));
        }
        Ok(Config { map })
    }

    /// An integer >= 0 (seconds, or a count where 0 turns a rule off), or `default` when the key is absent.
    pub fn non_negative_int(&self, key: &str, default: i64) -> Result<i64, String> {
        self.int_at_least(key, 0, default, "a non-negative integer")
    }

    /// An integer >= 1, or `default` when the key is absent.
    pub fn positive_int(&self, key: &str, default: i64) -> Result<i64, String> {
        self.int_at_least(key, 1, default, "an integer of at least 1")
    }

    fn int_at_least(&self, key: &str, min: i64, default: i64, what: &str) -> Result<i64, String> {
        match self.map.get(key) {
            None => Ok(default),
            Some(value) => match value.as_i64() {
                Some(n) if n >= min => Ok(n),
                _ => Err(format!("config.{key}: must be {what}, got {}", shown(value))),
            },
        }
    }

    /// A boolean, or `default` when the key is absent.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.map.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(value) => Err(format!("config.{key}: must be true or false, got {}", shown(value))),
        }
    }

    /// A string, trimmed; `None` when the key is absent or the string is blank.
    pub fn non_blank_string(&self, key: &str) -> Result<Option<String>, String> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_string)),
            Some(value) => Err(format!("config.{key}: must be a string, got {}", shown(value))),
        }
    }

    /// A list of strings, each one of `allowed`; empty when the key is absent.
    pub fn string_list_of(&self, key: &str, allowed: &[&str]) -> Result<Vec<String>, String> {
        let Some(value) = self.map.get(key) else {
            return Ok(Vec::new());
        };
        let Value::Array(items) = value else {
            return Err(format!("config.{key}: must be a list of strings, got {}", shown(value)));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) if allowed.contains(&s.as_str()) => Ok(s.clone()),
                Value::String(s) => {
                    Err(format!("config.{key}[{i}]: unknown value \"{s}\" (known: {})", allowed.join(", ")))
                }
                other => Err(format!("config.{key}[{i}]: must be a string, got {}", shown(other))),
            })
            .collect()
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// The offending value for an error message: short values verbatim, long ones by their kind.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 40 { text } else { kind(value).to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["a", "b"];

    #[test]
    fn blank_and_empty_object_are_empty_configs() {
        for json in ["", "  ", "{}"] {
            let config = Config::parse(json, KNOWN).unwrap();
            assert_eq!(config.non_negative_int("a", 7).unwrap(), 7);
        }
    }

    #[test]
    fn unknown_key_is_named_with_the_known_ones() {
        let err = Config::parse(r#"{"a": 1, "zzz": 2}"#, KNOWN).unwrap_err();
        assert_eq!(err, "config.zzz: unknown key (known: a, b)");
    }

    #[test]
    fn not_an_object_or_not_json_is_refused() {
        assert!(Config::parse("[1]", KNOWN).unwrap_err().starts_with("config: must be an object"));
        assert!(Config::parse("{", KNOWN).unwrap_err().starts_with("config: not valid JSON"));
    }

    #[test]
    fn integers_are_checked_and_name_the_key() {
        let config = Config::parse(r#"{"a": -1, "b": "5"}"#, KNOWN).unwrap();
        assert_eq!(
            config.non_negative_int("a", 0).unwrap_err(),
            "config.a: must be a non-negative integer, got -1"
        );
        assert_eq!(
            config.non_negative_int("b", 0).unwrap_err(),
            "config.b: must be a non-negative integer, got \"5\""
        );
        let config = Config::parse(r#"{"a": 0, "b": 1.5}"#, KNOWN).unwrap();
        assert_eq!(config.non_negative_int("a", 9).unwrap(), 0);
        assert!(
            config
                .positive_int("a", 9)
                .unwrap_err()
                .starts_with("config.a: must be an integer of at least 1")
        );
        assert!(config.non_negative_int("b", 9).unwrap_err().starts_with("config.b:"));
    }

    #[test]
    fn bools_strings_and_lists() {
        let config = Config::parse(r#"{"a": true, "b": "  coder "}"#, KNOWN).unwrap();
        assert!(config.bool("a", false).unwrap());
        assert_eq!(config.non_blank_string("b").unwrap().as_deref(), Some("coder"));
        assert!(config.bool("b", false).unwrap_err().starts_with("config.b: must be true or false"));
        assert!(config.non_blank_string("a").unwrap_err().starts_with("config.a: must be a string"));

        let config = Config::parse(r#"{"a": ["x", "y"], "b": "   "}"#, KNOWN).unwrap();
        assert_eq!(config.non_blank_string("b").unwrap(), None);
        assert_eq!(config.string_list_of("a", &["x", "y"]).unwrap(), ["x", "y"]);
        assert_eq!(
            config.string_list_of("a", &["x"]).unwrap_err(),
            "config.a[1]: unknown value \"y\" (known: x)"
        );
        assert!(config.string_list_of("b", &["x"]).unwrap_err().starts_with("config.b: must be a list"));
    }
}
