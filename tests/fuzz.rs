//! Property-based fuzzing of the parsers that take input from outside: the ProvisionPat body,
//! the host's timer payload, and PAT_TARGETS. They never panic, and what they accept is
//! exactly what the contract allows. Failing cases proptest finds are saved under
//! `tests/fuzz.proptest-regressions` and replayed on every run; the interesting ones also live
//! in `tests/corpus/` as regular tests.

use pat_rotator::config::{Config, valid_secret_name, valid_target_name};
use pat_rotator::handler::host::parse_timer;
use pat_rotator::handler::provision::parse;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[ -~]{0,12}".prop_map(Value::String),
        "\\PC{0,6}".prop_map(Value::String),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects whose keys are mostly the request's own, with values of any type.
fn request_like() -> impl Strategy<Value = Value> {
    let key =
        prop_oneof![Just("target".to_string()), Just("force".to_string()), Just("dry_run".to_string()), "[a-z_]{1,8}"];
    prop::collection::btree_map(key, any_json(), 0..5).prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn provision_body_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(Some("application/json"), Ok(body));
    }

    #[test]
    fn provision_accepts_exactly_the_contract(v in request_like()) {
        let o = v.as_object().unwrap();
        let valid = o.get("target").is_some_and(Value::is_string)
            && o.get("force").is_none_or(Value::is_boolean)
            && o.get("dry_run").is_none_or(Value::is_boolean)
            && o.keys().all(|k| ["target", "force", "dry_run"].contains(&k.as_str()));
        let r = parse(Some("application/json"), Ok(v.to_string().into_bytes()));
        prop_assert_eq!(r.is_ok(), valid, "{}", v);
        if let Err(a) = r {
            prop_assert!(a.status.is_client_error());
        }
    }

    #[test]
    fn timer_payload_never_panics(body in prop::collection::vec(any::<u8>(), 0..256), v in any_json()) {
        let _ = parse_timer(&body);
        let _ = parse_timer(v.to_string().as_bytes());
        let wrapped = json!({"Data": {"timer": v.clone()}, "Metadata": {"sys": v}});
        let _ = parse_timer(wrapped.to_string().as_bytes());
    }

    #[test]
    fn pat_targets_never_panic_and_accept_only_valid_targets(v in any_json(), raw in "\\PC{0,64}") {
        let _ = Config::from_lookup(|k| (k == "PAT_TARGETS").then(|| raw.clone()));
        let targets = json!([v]).to_string();
        if let Ok(c) = Config::from_lookup(|k| (k == "PAT_TARGETS").then(|| targets.clone())) {
            for t in &c.targets {
                prop_assert!(valid_target_name(&t.name));
                prop_assert!(valid_secret_name(&t.secret_name));
                prop_assert!((1..=730).contains(&t.lifetime_days));
                prop_assert!(t.renew_before_days > 0 && t.renew_before_days < t.lifetime_days);
                prop_assert!(t.revoke_grace_hours <= 720);
                prop_assert!(t.key_vault_url.starts_with("https://"));
            }
        }
    }

    #[test]
    fn generated_valid_targets_are_accepted(
        name in "[a-z0-9][a-z0-9-]{0,20}",
        secret in "[0-9a-zA-Z-]{1,40}",
        lifetime in 2u32..=730,
        grace in 0u32..=720,
        renew_seed in any::<u32>(),
    ) {
        let renew = 1 + renew_seed % (lifetime - 1);
        let t = json!([{ "name": name, "workspace_url": "adb-1.2.azuredatabricks.net", "key_vault_url": "https://kv.vault.azure.net",
            "secret_name": secret, "lifetime_days": lifetime, "renew_before_days": renew, "revoke_grace_hours": grace }]).to_string();
        let c = Config::from_lookup(|k| (k == "PAT_TARGETS").then(|| t.clone()));
        prop_assert!(c.is_ok(), "{:?}", c.err());
    }
}
