//! What the export macros expand to, shared by every kind: the `plugin` interface (`describe` from the
//! crate's Cargo metadata or the macro's `name =` / `version =`, `validate-config` from the typed config)
//! and the per-instance config cache. Not an API: only the macros use it.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use serde::de::DeserializeOwned;

use crate::config::{ConfigError, parse};

/// Call `call` with `json` read into `C`, or `on_error` with why it could not be read.
///
/// The host keeps one instance of a policy for all the calls of a tick, each with the same config, so the
/// parsed config is kept between calls and read again only when the text changes. A policy component holds
/// one policy, so one slot is enough.
pub fn with_config<C: DeserializeOwned + 'static, R>(
    json: &str,
    on_error: impl FnOnce(ConfigError) -> R,
    call: impl FnOnce(&C) -> R,
) -> R {
    thread_local! {
        static PARSED: RefCell<Option<(String, Rc<dyn Any>)>> = const { RefCell::new(None) };
    }
    let cached = PARSED.with_borrow(|parsed| {
        parsed
            .as_ref()
            .filter(|(text, _)| text == json)
            .and_then(|(_, config)| config.clone().downcast::<C>().ok())
    });
    let config = match cached {
        Some(config) => config,
        None => match parse::<C>(json) {
            Ok(config) => {
                let config = Rc::new(config);
                PARSED.set(Some((json.to_string(), config.clone())));
                config
            }
            Err(err) => return on_error(err),
        },
    };
    call(&config)
}

/// `validate-config`: `Ok` when `json` reads into `C`, else the message naming the key.
pub fn validate_config<C: DeserializeOwned>(json: &str) -> Result<(), String> {
    parse::<C>(json).map(drop).map_err(|err| err.to_string())
}

/// The first expression: an optional one given to a macro, else the default after it.
#[doc(hidden)]
#[macro_export]
macro_rules! __first {
    ($first:expr $(, $rest:expr)*) => {
        $first
    };
}

/// `plugin`'s functions for the local export type `$export`, whose policy reads `$config`. The caller exports
/// them with `$crate::bindings::plugin::export!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin {
    ($export:ident, $kind:ident, $config:ty, name = $name:expr, version = $version:expr) => {
        impl $crate::bindings::plugin::exports::kanban::policy::plugin::Guest for $export {
            fn describe() -> $crate::types::PluginInfo {
                $crate::types::PluginInfo {
                    name: ::std::string::ToString::to_string($name),
                    version: ::std::string::ToString::to_string($version),
                    kind: $crate::types::PolicyKind::$kind,
                }
            }

            fn validate_config(
                config: ::std::string::String,
            ) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__private::validate_config::<$config>(&config)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Counted {
        n: i64,
    }

    thread_local! {
        static PARSES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    impl Default for Counted {
        fn default() -> Self {
            PARSES.set(PARSES.get() + 1);
            Counted { n: 7 }
        }
    }

    #[test]
    fn the_config_is_parsed_once_while_it_does_not_change() {
        let n = |json: &str| with_config::<Counted, _>(json, |err| panic!("{err}"), |c| c.n);
        assert_eq!(n("{}"), 7);
        assert_eq!(n("{}"), 7);
        assert_eq!(PARSES.get(), 1);
        assert_eq!(n(r#"{"n": 3}"#), 3);
        assert_eq!(PARSES.get(), 2);
        let err = with_config::<Counted, _>(r#"{"n": "x"}"#, |err| err.to_string(), |_| unreachable!());
        assert_eq!(err, "config.n: must be an integer, got \"x\"");
        assert_eq!(validate_config::<Counted>(r#"{"m": 1}"#), Err("config.m: unknown key (known: n)".into()));
    }
}
