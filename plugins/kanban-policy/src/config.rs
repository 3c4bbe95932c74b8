//! A policy's `[policies.config]` table, as the host hands it over (a JSON object), read into the plugin's
//! own `#[derive(Deserialize)]` struct with errors that name the key at fault: `config.<key>: ...`, the form
//! `kanban board check` shows the operator.
//!
//! [`parse`] runs serde over the parsed JSON with a deserializer of its own that knows where it is, so a
//! wrong value reads `config.cooldown_seconds: must be a non-negative integer, got "5m"` rather than serde's
//! `invalid type: string "5m", expected i64 at line 1 column 22`. Keys the struct does not declare are
//! refused before any value is read (`config.cooldwn: unknown key (known: ...)`), whether or not the struct
//! says `deny_unknown_fields`: a typo in board.toml must fail `board check`, not be ignored. A wrong value is
//! always an error, never a silent fallback to the default.
//!
//! Plain Rust types give plain rules: `bool` is `true or false`, `i64` an integer, `u32` an integer from 0
//! to 4294967295, `String` a string, `Vec<T>` a list, a nested struct a table, a unit-only enum one of its
//! (renamed) variant names. The `deserialize_with` helpers here add the rules plain types cannot say:
//! [`non_negative`], [`positive`], [`non_blank`] and [`string_list`]. A helper of your own reports a
//! problem with `serde::de::Error::custom("must not be empty")`, and the key is put in front for you.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    SeqAccess, VariantAccess, Visitor,
};
use serde::{Deserialize, forward_to_deserialize_any};
use serde_json::{Map, Value};

/// Read `json` (a JSON object; blank means `{}`) into `T`, naming the key at fault on error.
///
/// ```
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// #[serde(deny_unknown_fields, default)]
/// struct Settings {
///     #[serde(deserialize_with = "kanban_policy::config::non_negative")]
///     cooldown_seconds: i64,
///     notify: bool,
/// }
/// impl Default for Settings {
///     fn default() -> Self { Settings { cooldown_seconds: 300, notify: false } }
/// }
///
/// use kanban_policy::config::parse;
/// assert_eq!(parse::<Settings>("{}").unwrap(), Settings::default());
/// assert_eq!(parse::<Settings>(r#"{"notify": true}"#).unwrap().notify, true);
/// assert_eq!(
///     parse::<Settings>(r#"{"cooldown_seconds": "5m"}"#).unwrap_err().to_string(),
///     r#"config.cooldown_seconds: must be a non-negative integer, got "5m""#
/// );
/// assert_eq!(
///     parse::<Settings>(r#"{"cooldown": 5}"#).unwrap_err().to_string(),
///     "config.cooldown: unknown key (known: cooldown_seconds, notify)"
/// );
/// ```
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, ConfigError> {
    let value = if json.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(json).map_err(|err| ConfigError {
            key: ROOT.to_string(),
            problem: Problem::Message(format!("not valid JSON: {err}")),
        })?
    };
    if !value.is_object() {
        return Err(ConfigError {
            key: ROOT.to_string(),
            problem: Problem::Message(format!(
                "must be an object (a [policies.config] table), got {}",
                kind(&value)
            )),
        });
    }
    T::deserialize(ValueDeserializer { key: ROOT.to_string(), value: &value })
}

/// The key path every error starts from.
const ROOT: &str = "config";

/// Why a config was refused, naming the key: `config.<key>: <what is wrong>`. Its `Display` is the message
/// for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Empty until the deserializer places the error at the value it was reading.
    key: String,
    problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// The value is not what the field wants: `must be {expected}, got {got}`. `got` is filled in where
    /// the value is known.
    Expected {
        expected: String,
        got: Option<String>,
    },
    UnknownValue {
        value: String,
        known: Vec<&'static str>,
    },
    UnknownKey {
        known: Vec<&'static str>,
    },
    /// A field the table lacks; placed at the table's key plus the field.
    MissingKey {
        field: &'static str,
    },
    Message(String),
}

impl ConfigError {
    /// Where the problem is: `config`, `config.key`, `config.list[2]` or `config.table.key`.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn new(problem: Problem) -> Self {
        ConfigError { key: String::new(), problem }
    }

    /// Put an error raised while reading `value` at `key`, unless an inner value already placed it.
    fn placed(mut self, key: &str, value: &Value) -> Self {
        if self.key.is_empty() {
            match &mut self.problem {
                Problem::Expected { got, .. } => {
                    got.get_or_insert_with(|| shown(value));
                    self.key = key.to_string();
                }
                Problem::MissingKey { field } => self.key = format!("{key}.{field}"),
                _ => self.key = key.to_string(),
            }
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = if self.key.is_empty() { ROOT } else { &self.key };
        match &self.problem {
            Problem::Expected { expected, got: Some(got) } => {
                write!(f, "{key}: must be {expected}, got {got}")
            }
            Problem::Expected { expected, got: None } => write!(f, "{key}: must be {expected}"),
            Problem::UnknownValue { value, known } => {
                write!(f, "{key}: unknown value \"{value}\" (known: {})", known.join(", "))
            }
            Problem::UnknownKey { known } if known.is_empty() => {
                write!(f, "{key}: unknown key (this policy takes no config)")
            }
            Problem::UnknownKey { known } => write!(f, "{key}: unknown key (known: {})", known.join(", ")),
            Problem::MissingKey { .. } => write!(f, "{key}: missing (this key is required)"),
            Problem::Message(message) => write!(f, "{key}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for String {
    fn from(err: ConfigError) -> String {
        err.to_string()
    }
}

impl de::Error for ConfigError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ConfigError::new(Problem::Message(msg.to_string()))
    }

    fn invalid_type(_: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        ConfigError::new(Problem::Expected { expected: plain_words(&expected.to_string()), got: None })
    }

    fn invalid_value(_: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        ConfigError::new(Problem::Expected { expected: plain_words(&expected.to_string()), got: None })
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        ConfigError::new(Problem::UnknownValue { value: variant.to_string(), known: expected.to_vec() })
    }

    fn unknown_field(_: &str, expected: &'static [&'static str]) -> Self {
        // Raised while reading the key itself, so the map reader places it at that key.
        ConfigError::new(Problem::UnknownKey { known: expected.to_vec() })
    }

    fn missing_field(field: &'static str) -> Self {
        ConfigError::new(Problem::MissingKey { field })
    }
}

/// serde's words for what a type wants (its visitor's `expecting`), in the words of a board.toml author.
const PLAIN_WORDS: &[(&str, &str)] = &[
    ("a boolean", "true or false"),
    ("i8", "an integer from -128 to 127"),
    ("i16", "an integer from -32768 to 32767"),
    ("i32", "an integer from -2147483648 to 2147483647"),
    ("i64", "an integer"),
    ("i128", "an integer"),
    ("isize", "an integer"),
    ("u8", "an integer from 0 to 255"),
    ("u16", "an integer from 0 to 65535"),
    ("u32", "an integer from 0 to 4294967295"),
    ("u64", "a non-negative integer"),
    ("u128", "a non-negative integer"),
    ("usize", "a non-negative integer"),
    ("f32", "a number"),
    ("f64", "a number"),
    ("a sequence", "a list"),
    ("a map", "a table"),
    ("a character", "a single character"),
    ("unit", "empty"),
];

fn plain_words(expected: &str) -> String {
    if expected.starts_with("struct ") {
        return "a table".to_string();
    }
    let words = PLAIN_WORDS.iter().find(|(serde, _)| *serde == expected).map_or(expected, |(_, plain)| plain);
    words.to_string()
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

/// The offending value for an error message: short values verbatim (as JSON), long ones by their kind.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 40 { text } else { kind(value).to_string() }
}

/// Reads one JSON value, knowing the key path it sits at.
struct ValueDeserializer<'a> {
    key: String,
    value: &'a Value,
}

impl<'a> ValueDeserializer<'a> {
    fn place<T>(&self, result: Result<T, ConfigError>) -> Result<T, ConfigError> {
        result.map_err(|err| err.placed(&self.key, self.value))
    }

    fn table(&self) -> Option<&'a Map<String, Value>> {
        self.value.as_object()
    }
}

impl<'de, 'a> Deserializer<'de> for ValueDeserializer<'a> {
    type Error = ConfigError;

    // Out of line (as `read_value`): inlined into every field of every config struct, it costs a plugin
    // more code than it saves.
    #[inline(never)]
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => visitor.visit_i64(i),
                (None, Some(u), _) => visitor.visit_u64(u),
                (None, None, Some(f)) => visitor.visit_f64(f),
                (None, None, None) => Err(de::Error::custom("unreadable number")),
            },
            Value::String(s) => visitor.visit_str(s),
            Value::Array(items) => {
                visitor.visit_seq(ListReader { key: &self.key, items: items.iter(), index: 0 })
            }
            Value::Object(map) => visitor.visit_map(TableReader::new(&self.key, map)),
        };
        self.place(result)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConfigError> {
        match self.value {
            Value::Null => self.place(visitor.visit_none()),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        let Some(map) = self.table() else {
            return self
                .place(Err(ConfigError::new(Problem::Expected { expected: "a table".into(), got: None })));
        };
        // Unknown keys first, so a typo is reported as one even when another value is also wrong.
        if let Some(key) = map.keys().find(|key| !fields.contains(&key.as_str())) {
            return Err(ConfigError {
                key: format!("{}.{key}", self.key),
                problem: Problem::UnknownKey { known: fields.to_vec() },
            });
        }
        let result = visitor.visit_map(TableReader::new(&self.key, map));
        self.place(result)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        let result = match self.value {
            Value::String(variant) => visitor.visit_enum(variant.as_str().into_deserializer()),
            Value::Object(map) if map.len() == 1 => {
                let (variant, value) = map.iter().next().expect("one entry");
                let key = format!("{}.{variant}", self.key);
                visitor.visit_enum(VariantReader { variant, value: ValueDeserializer { key, value } })
            }
            _ => Err(ConfigError::new(Problem::Expected { expected: "a string".into(), got: None })),
        };
        self.place(result)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// Read one value of a list or table at `key`. An error is placed there even when it comes from a
/// `deserialize_with` function after the value itself was read (`must not be empty`).
#[inline(never)]
fn read_value<'de, T: DeserializeSeed<'de>>(
    seed: T,
    key: String,
    value: &Value,
) -> Result<T::Value, ConfigError> {
    match seed.deserialize(ValueDeserializer { key: key.clone(), value }) {
        Ok(read) => Ok(read),
        Err(err) => Err(err.placed(&key, value)),
    }
}

struct ListReader<'k, 'a> {
    key: &'k str,
    items: std::slice::Iter<'a, Value>,
    index: usize,
}

impl<'de> SeqAccess<'de> for ListReader<'_, '_> {
    type Error = ConfigError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ConfigError> {
        let Some(value) = self.items.next() else {
            return Ok(None);
        };
        let key = format!("{}[{}]", self.key, self.index);
        self.index += 1;
        read_value(seed, key, value).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct TableReader<'k, 'a> {
    key: &'k str,
    entries: serde_json::map::Iter<'a>,
    value: Option<(&'a String, &'a Value)>,
}

impl<'k, 'a> TableReader<'k, 'a> {
    fn new(key: &'k str, map: &'a Map<String, Value>) -> Self {
        TableReader { key, entries: map.iter(), value: None }
    }
}

impl<'de> MapAccess<'de> for TableReader<'_, '_> {
    type Error = ConfigError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, ConfigError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        let deserializer: de::value::StrDeserializer<'_, ConfigError> = key.as_str().into_deserializer();
        seed.deserialize(deserializer).map(Some).map_err(|err| {
            let at = format!("{}.{key}", self.key);
            err.placed(&at, &Value::String(key.clone()))
        })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ConfigError> {
        let (key, value) = self.value.take().expect("next_key_seed before next_value_seed");
        read_value(seed, format!("{}.{key}", self.key), value)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An externally tagged enum variant with data: `{"variant": value}`.
struct VariantReader<'a> {
    variant: &'a str,
    value: ValueDeserializer<'a>,
}

impl<'de, 'a> EnumAccess<'de> for VariantReader<'a> {
    type Error = ConfigError;
    type Variant = ValueDeserializer<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), ConfigError> {
        let deserializer: de::value::StrDeserializer<'_, ConfigError> = self.variant.into_deserializer();
        Ok((seed.deserialize(deserializer)?, self.value))
    }
}

impl<'de> VariantAccess<'de> for ValueDeserializer<'_> {
    type Error = ConfigError;

    fn unit_variant(self) -> Result<(), ConfigError> {
        Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, ConfigError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, ConfigError> {
        self.deserialize_any(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConfigError> {
        self.deserialize_struct("", fields, visitor)
    }
}

/// For `#[serde(deserialize_with = "kanban_policy::config::non_negative")]` on an `i64`: an integer >= 0
/// (seconds, or a count where 0 turns a rule off).
pub fn non_negative<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_i64(IntAtLeast { min: 0, what: "a non-negative integer" })
}

/// For `#[serde(deserialize_with = "kanban_policy::config::positive")]` on an `i64`: an integer >= 1.
pub fn positive<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_i64(IntAtLeast { min: 1, what: "an integer of at least 1" })
}

struct IntAtLeast {
    min: i64,
    what: &'static str,
}

impl Visitor<'_> for IntAtLeast {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<i64, E> {
        if n >= self.min { Ok(n) } else { Err(E::invalid_value(de::Unexpected::Signed(n), &self)) }
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<i64, E> {
        match i64::try_from(n) {
            Ok(n) => self.visit_i64(n),
            Err(_) => Err(E::invalid_value(de::Unexpected::Unsigned(n), &self)),
        }
    }
}

/// For `#[serde(deserialize_with = "kanban_policy::config::non_blank")]` on an `Option<String>`: a string,
/// trimmed; a blank one is `None`, like a missing key (give the field `#[serde(default)]` or the struct
/// `#[serde(default)]`).
pub fn non_blank<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let trimmed = text.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

/// For `#[serde(deserialize_with = "kanban_policy::config::string_list")]` on a `Vec<T>` whose items are
/// written as strings (`String`, or a unit-only enum whose names are the allowed values): a list, refused as
/// `must be a list of strings` when it is not one, each item named by its index when it is wrong
/// (`config.rules[1]: unknown value "nope" (known: a, b)`).
pub fn string_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ListOfStrings<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ListOfStrings<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }
    }

    deserializer.deserialize_seq(ListOfStrings(std::marker::PhantomData))
}

/// The config of a policy that takes none: any key is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        #[serde(deserialize_with = "non_negative")]
        a: i64,
        #[serde(deserialize_with = "positive")]
        b: i64,
        on: bool,
        #[serde(deserialize_with = "non_blank")]
        name: Option<String>,
        #[serde(deserialize_with = "string_list")]
        modes: Vec<Mode>,
        small: u8,
        ratio: f64,
        nested: Nested,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Mode {
        Fast,
        SlowAndSteady,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Nested {
        depth: u32,
    }

    fn err(json: &str) -> String {
        parse::<Sample>(json).unwrap_err().to_string()
    }

    #[test]
    fn blank_and_empty_object_are_the_defaults() {
        for json in ["", "  ", "{}"] {
            assert_eq!(parse::<Sample>(json).unwrap(), Sample::default());
        }
    }

    #[test]
    fn values_are_read() {
        let sample = parse::<Sample>(
            r#"{"a": 0, "b": 3, "on": true, "name": "  coder ", "modes": ["fast", "slow-and-steady"],
                "small": 255, "ratio": 1, "nested": {"depth": 2}}"#,
        )
        .unwrap();
        assert_eq!(sample.a, 0);
        assert_eq!(sample.b, 3);
        assert!(sample.on);
        assert_eq!(sample.name.as_deref(), Some("coder"));
        assert_eq!(sample.modes, [Mode::Fast, Mode::SlowAndSteady]);
        assert_eq!(sample.small, 255);
        assert_eq!(sample.ratio, 1.0);
        assert_eq!(sample.nested.depth, 2);
        assert_eq!(parse::<Sample>(r#"{"name": "   "}"#).unwrap().name, None);
    }

    #[test]
    fn unknown_key_is_named_with_the_known_ones_before_any_value_is_read() {
        assert_eq!(
            err(r#"{"a": -1, "zzz": 2}"#),
            "config.zzz: unknown key (known: a, b, on, name, modes, small, ratio, nested)"
        );
        assert_eq!(err(r#"{"nested": {"deep": 1}}"#), "config.nested.deep: unknown key (known: depth)");
        assert_eq!(
            parse::<NoConfig>(r#"{"x": 1}"#).unwrap_err().to_string(),
            "config.x: unknown key (this policy takes no config)"
        );
        assert_eq!(parse::<NoConfig>("{}").unwrap(), NoConfig {});
    }

    #[test]
    fn not_an_object_or_not_json_is_refused() {
        assert_eq!(err("[1]"), "config: must be an object (a [policies.config] table), got a list");
        assert!(err("{").starts_with("config: not valid JSON: "), "{}", err("{"));
    }

    #[test]
    fn integers_are_checked_and_name_the_key() {
        assert_eq!(err(r#"{"a": -1}"#), "config.a: must be a non-negative integer, got -1");
        assert_eq!(err(r#"{"a": "5"}"#), "config.a: must be a non-negative integer, got \"5\"");
        assert_eq!(err(r#"{"a": 1.5}"#), "config.a: must be a non-negative integer, got 1.5");
        assert_eq!(
            err(r#"{"a": 18446744073709551615}"#),
            "config.a: must be a non-negative integer, got 18446744073709551615"
        );
        assert_eq!(err(r#"{"b": 0}"#), "config.b: must be an integer of at least 1, got 0");
        assert_eq!(err(r#"{"small": 256}"#), "config.small: must be an integer from 0 to 255, got 256");
        assert_eq!(err(r#"{"ratio": "x"}"#), "config.ratio: must be a number, got \"x\"");
        assert_eq!(
            err(r#"{"nested": {"depth": -1}}"#),
            "config.nested.depth: must be an integer from 0 to 4294967295, got -1"
        );
    }

    #[test]
    fn bools_strings_lists_and_tables() {
        assert_eq!(err(r#"{"on": "yes"}"#), "config.on: must be true or false, got \"yes\"");
        assert_eq!(err(r#"{"name": 1}"#), "config.name: must be a string, got 1");
        assert_eq!(err(r#"{"name": null}"#), "config.name: must be a string, got null");
        assert_eq!(err(r#"{"modes": "fast"}"#), "config.modes: must be a list of strings, got \"fast\"");
        assert_eq!(
            err(r#"{"modes": ["fast", "warp"]}"#),
            "config.modes[1]: unknown value \"warp\" (known: fast, slow-and-steady)"
        );
        assert_eq!(err(r#"{"modes": [1]}"#), "config.modes[0]: must be a string, got 1");
        assert_eq!(err(r#"{"nested": 3}"#), "config.nested: must be a table, got 3");
    }

    #[test]
    fn long_values_are_shown_by_their_kind() {
        let long = "x".repeat(60);
        assert_eq!(err(&format!(r#"{{"on": "{long}"}}"#)), "config.on: must be true or false, got a string");
    }

    #[test]
    fn custom_messages_and_missing_keys_are_placed_at_the_key() {
        fn not_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
            let s = String::deserialize(d)?;
            if s.is_empty() { Err(de::Error::custom("must not be empty")) } else { Ok(s) }
        }
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Strict {
            #[serde(deserialize_with = "not_empty")]
            marker: String,
        }
        let err = parse::<Strict>(r#"{"marker": ""}"#).unwrap_err();
        assert_eq!(err.to_string(), "config.marker: must not be empty");
        assert_eq!(err.key(), "config.marker");
        assert_eq!(
            parse::<Strict>("{}").unwrap_err().to_string(),
            "config.marker: missing (this key is required)"
        );
        assert_eq!(parse::<Strict>(r#"{"marker": "x"}"#).unwrap().marker, "x");
    }
}
