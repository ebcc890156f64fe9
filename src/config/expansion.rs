//! A first pass over a YAML file that bounds what its aliases expand to.
//!
//! serde_yaml replays an alias (`*name`) each time it is used, and caps replays only at
//! 100 times the document's events. That stops the classic billion laughs, but not a
//! long anchored scalar used thousands of times: a 1 MiB file could make the typed pass
//! copy gigabytes of strings into hook command lists. This pass visits the document as
//! the typed pass will — aliases expanded, without copying anything — and refuses it
//! once its values add up to more than `MAX_EXPANDED` (each value counts its length,
//! plus one so that a flood of tiny values counts too). Deep nesting is refused by
//! serde_yaml's own recursion limit (128) in this pass as in the typed one.
//!
//! Before either pass, `check_flow_depth` counts brackets: libyaml's scanner takes time
//! quadratic in the depth of flow collections (`[[[[…`), so that 100,000 levels took
//! a minute before serde_yaml's recursion limit could refuse them (found by the
//! deep-nesting tests of `tests/hostile.rs`; the fuzzer's inputs were too short to show it).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};

use super::assemble::MAX_CONFIG_BYTES;
use super::error::ConfigError;

/// What a document may expand to: four times the largest file, far more than any real
/// config's anchors make, and little enough to parse in milliseconds.
pub(super) const MAX_EXPANDED: usize = 4 * MAX_CONFIG_BYTES;

const TOO_LARGE: &str = "the document expands through its aliases (`*name`) to more than 4 MiB; write the values out, or use fewer aliases";

/// The deepest `[`/`{` nesting read, as serde_yaml's recursion limit.
pub(super) const MAX_FLOW_DEPTH: usize = 128;

/// Refuses text whose brackets nest deeper than `MAX_FLOW_DEPTH`, at the bracket that
/// went too deep. Every bracket counts, quoted or not: telling quotes apart would take a
/// YAML scanner, and a config with 129 unclosed brackets in its strings is no config.
pub(super) fn check_flow_depth(file_name: &str, text: &str) -> Result<(), ConfigError> {
    let mut depth = 0usize;
    for (index, line) in text.lines().enumerate() {
        for (column, c) in line.chars().enumerate() {
            match c {
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => continue,
            }
            if depth > MAX_FLOW_DEPTH {
                return Err(ConfigError::new(
                    file_name,
                    index + 1,
                    column + 1,
                    format!("brackets (`[`, `{{`) nest more than {MAX_FLOW_DEPTH} deep here; a config never needs to: write it out plainly"),
                ));
            }
        }
    }
    Ok(())
}

/// Walks `text` as YAML and fails, at the value where the budget ran out, when it
/// expands to more than `MAX_EXPANDED`. Syntax errors are left to the typed pass, which
/// reports them in the same words; only the budget and the recursion limit fail here.
pub(super) fn check(file_name: &str, text: &str) -> Result<(), ConfigError> {
    let left = Cell::new(MAX_EXPANDED);
    match Measure(&left).deserialize(serde_yaml::Deserializer::from_str(text)) {
        Ok(()) => Ok(()),
        Err(error) => {
            let message = error.to_string();
            if message.contains(TOO_LARGE) || message.contains("recursion limit exceeded") {
                Err(ConfigError::from_yaml(file_name, &error))
            } else {
                Ok(())
            }
        }
    }
}

/// Visits any value, spending its size from the budget.
#[derive(Clone, Copy)]
struct Measure<'a>(&'a Cell<usize>);

impl Measure<'_> {
    fn spend<E: de::Error>(self, size: usize) -> Result<(), E> {
        let left = self.0.get();
        let cost = size.saturating_add(1);
        if cost > left {
            return Err(E::custom(TOO_LARGE));
        }
        self.0.set(left - cost);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Measure<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Measure<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.spend(text.len())
    }
    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<(), E> {
        self.spend(bytes.len())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.spend(0)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.spend(0)?;
        self.deserialize(deserializer)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.spend(0)?;
        self.deserialize(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.spend(0)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.spend(0)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    /// A tagged value (`!tag value`): the tag is a string, the value anything.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        let ((), variant) = data.variant_seed(self)?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_config_passes() {
        let text = "app: shop\nservices:\n  web: { command: ./serve, instances: 2 }\nhooks:\n  deploy: &d [a, b]\n  post_deploy: *d\n";
        assert_eq!(check("slipway.yml", text), Ok(()));
    }

    #[test]
    fn syntax_errors_are_left_to_the_typed_pass() {
        assert_eq!(check("slipway.yml", "a: [b\n"), Ok(()));
    }

    #[test]
    fn a_long_scalar_used_many_times_is_refused_where_the_budget_runs_out() {
        let long = "x".repeat(100_000);
        let text = format!(
            "services: {{ web: {{ command: x }} }}\nhooks:\n  deploy: &a \"{long}\"\n  before_release: [{}]\n",
            vec!["*a"; 60].join(", ")
        );
        let error = check("slipway.yml", &text).unwrap_err();
        assert_eq!(error.file, "slipway.yml");
        assert!(
            error.message.contains("expands through its aliases"),
            "{error}"
        );
        assert!(error.line >= 3, "{error}");
    }

    #[test]
    fn deep_brackets_are_refused_before_libyaml_scans_them() {
        let text = format!("a: {}{}", "[".repeat(200), "]".repeat(200));
        let error = check_flow_depth("slipway.yml", &text).unwrap_err();
        assert_eq!((error.line, error.column), (1, 4 + MAX_FLOW_DEPTH));
        assert!(error.message.contains("nest more than 128 deep"), "{error}");
        let balanced = "[a] ".repeat(10_000) + &"{".repeat(100) + &"}".repeat(100);
        assert_eq!(check_flow_depth("slipway.yml", &balanced), Ok(()));
    }

    #[test]
    fn deep_block_nesting_is_refused_by_the_recursion_limit() {
        let text: String = (1..400)
            .map(|i| format!("{}k{i}:\n", "  ".repeat(i - 1)))
            .collect();
        let error = check("slipway.yml", &text).unwrap_err();
        assert!(error.message.contains("nests"), "{error}");
    }
}
