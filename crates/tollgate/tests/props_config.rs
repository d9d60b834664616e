//! Property tests of the config loader: whatever text it is given, it answers with a config or
//! an error naming what is wrong, never a panic. `fuzz/run.sh` runs these for minutes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use tollgate::config;

fn no_env(_: &str) -> Option<String> {
    None
}

/// Values a careless config holds where a model entry's fields go.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9/_.*-]{0,20}",
        Just("os.environ/UNSET_VAR".to_string()),
        Just("~".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "\\PC{0,12}".prop_map(|s| format!("{s:?}")),
    ]
}

proptest! {
    #[test]
    fn any_text_is_loaded_or_refused(text in "\\PC{0,300}") {
        let _ = config::parse(&text, "fuzz.yaml", &no_env);
    }

    #[test]
    fn any_model_entry_is_loaded_or_refused(
        entries in prop::collection::vec(
            (scalar(), prop::collection::vec(("[a-z_]{1,24}", scalar()), 0..6)),
            0..4,
        ),
        settings in prop::collection::vec(("[a-z_]{1,24}", scalar()), 0..4),
    ) {
        let mut yaml = String::from("model_list:\n");
        for (name, params) in &entries {
            yaml.push_str(&format!("  - model_name: {name}\n    litellm_params:\n      model: openai/x\n"));
            for (k, v) in params {
                yaml.push_str(&format!("      {k}: {v}\n"));
            }
        }
        yaml.push_str("general_settings:\n  master_key: sk-fuzz-0123456789abcdef0123456789abcdef\n");
        for (k, v) in &settings {
            yaml.push_str(&format!("  {k}: {v}\n"));
        }
        let _ = config::parse(&yaml, "fuzz.yaml", &no_env);
    }
}
