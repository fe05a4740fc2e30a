//! Property-based fuzzing of the parsers that take input from outside: the ProvisionPat body,
//! the host's timer payload, and PAT_TARGETS. They never panic, and what they accept is
//! exactly what the contract allows. Failing cases proptest finds are saved under
//! `tests/fuzz.proptest-regressions` and replayed on every run; the interesting ones also live
//! in `tests/corpus/` as regular tests.

use std::cell::Cell;

use pat_rotator::config::{Config, Kind, valid_secret_name, valid_target_name};
use pat_rotator::handler::host::parse_timer;
use pat_rotator::handler::provision::parse;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
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
    fn pat_targets_never_panic(v in any_json(), raw in "\\PC{0,64}") {
        let _ = Config::from_lookup(|k| (k == "PAT_TARGETS").then(|| raw.clone()));
        let targets = json!([v]).to_string();
        let _ = Config::from_lookup(|k| (k == "PAT_TARGETS").then(|| targets.clone()));
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

/// What the generator put into one field of a target, so the test knows what to expect.
#[derive(Clone, Debug)]
enum Pick {
    /// Not in the object.
    Absent,
    /// In the object, but `null`, `""` or an empty list, which count as unset.
    Empty(Value),
    /// A value the contract allows for this field on its own.
    Valid(Value),
    /// A value the contract refuses (or an unknown key).
    Invalid(Value),
}

impl Pick {
    fn value(&self) -> Option<&Value> {
        match self {
            Pick::Absent => None,
            Pick::Empty(v) | Pick::Valid(v) | Pick::Invalid(v) => Some(v),
        }
    }
    fn valid(&self) -> Option<&Value> {
        if let Pick::Valid(v) = self { Some(v) } else { None }
    }
}

/// Weights: (absent, empty, valid, invalid).
fn pick(
    w: (u32, u32, u32, u32),
    valid: impl Strategy<Value = Value> + 'static,
    invalid: impl Strategy<Value = Value> + 'static,
) -> BoxedStrategy<Pick> {
    pick_with(w, vec![Value::Null, json!(""), json!("  ")], valid, invalid)
}

/// `pick` with the values that count as unset for this field.
fn pick_with(
    w: (u32, u32, u32, u32),
    empties: Vec<Value>,
    valid: impl Strategy<Value = Value> + 'static,
    invalid: impl Strategy<Value = Value> + 'static,
) -> BoxedStrategy<Pick> {
    let empties = select(empties);
    prop_oneof![
        w.0 => Just(Pick::Absent),
        w.1 => empties.prop_map(Pick::Empty),
        w.2 => valid.prop_map(Pick::Valid),
        w.3 => invalid.prop_map(Pick::Invalid),
    ]
    .boxed()
}

fn values(v: &[Value]) -> impl Strategy<Value = Value> + 'static {
    select(v.to_vec())
}

/// An integer as a JSON number or, sometimes, a numeric string (both are allowed).
fn int(r: impl Strategy<Value = i64> + 'static) -> impl Strategy<Value = Value> + 'static {
    (r, any::<bool>()).prop_map(|(n, quoted)| if quoted { json!(n.to_string()) } else { json!(n) })
}

const GUID: &str = "0a1b2c3d-0000-4000-8000-00000000abcd";

/// `PAT_TARGETS` entries whose keys are the contract's fields, each absent, empty, valid or
/// invalid, so that about one in ten is a valid target of either kind.
fn target_like() -> impl Strategy<Value = Vec<(&'static str, Pick)>> {
    let required = (1, 1, 16, 1);
    let optional = (6, 1, 6, 1);
    let pat_only = (8, 1, 3, 1);
    let fields: Vec<(&'static str, BoxedStrategy<Pick>)> = vec![
        (
            "name",
            pick(
                required,
                "[a-z0-9][a-z0-9-]{0,20}".prop_map(Value::String),
                values(&[json!("Bad_Name"), json!("-lead"), json!("a".repeat(64)), json!(5)]),
            ),
        ),
        (
            "workspace_url",
            pick(
                required,
                values(&[
                    json!("adb-1.2.azuredatabricks.net"),
                    json!("https://ADB-1.2.azuredatabricks.net/"),
                    json!("https://x.databricks.azure.us:443"),
                    json!("x.databricks.azure.cn"),
                    json!("http://127.0.0.1:9"),
                ]),
                values(&[
                    json!("https://example.com"),
                    json!("http://adb-1.2.azuredatabricks.net"),
                    json!("https://u:p@adb-1.2.azuredatabricks.net"),
                    json!("https://adb-1.2.azuredatabricks.net/x"),
                    json!("https://adb-1.2.azuredatabricks.net?x=1"),
                    json!(1),
                ]),
            ),
        ),
        (
            "workspace_resource_id",
            pick(
                optional,
                values(&[json!("/subscriptions/1/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/w")]),
                values(&[json!("/nope"), json!(3)]),
            ),
        ),
        (
            "key_vault_url",
            pick(
                required,
                values(&[
                    json!("https://kv.vault.azure.net"),
                    json!("kv.vault.azure.net"),
                    json!("https://kv.vault.azure.cn/"),
                    json!("https://127.0.0.1:8443"),
                ]),
                values(&[
                    json!("http://kv.vault.azure.net"),
                    json!("https://kv.vault.azure.net#x"),
                    json!("https://a:b@kv.vault.azure.net"),
                    json!("not a url"),
                    json!(true),
                ]),
            ),
        ),
        (
            "secret_name",
            pick(
                required,
                "[0-9a-zA-Z-]{1,40}".prop_map(Value::String),
                values(&[json!("a_b"), json!("a b"), json!("a".repeat(128)), json!(7)]),
            ),
        ),
        (
            "lifetime_days",
            pick(
                optional,
                int(prop_oneof![60i64..=730, 1i64..=730]),
                values(&[json!(0), json!(731), json!(-1), json!(1.5), json!("x"), json!(true)]),
            ),
        ),
        (
            "renew_before_days",
            // Any integer: whether it is valid depends on lifetime_days.
            pick(optional, int(prop_oneof![1i64..=59, -3i64..=800]), values(&[json!(1.5), json!("x"), json!(false)])),
        ),
        ("revoke_grace_hours", pick(optional, int(0i64..=720), values(&[json!(-1), json!(721), json!("x")]))),
        (
            "scopes",
            pick_with(
                pat_only,
                vec![Value::Null, json!(""), json!([]), json!(" , ")],
                values(&[json!(["sql"]), json!(["sql", "unity-catalog"]), json!("sql, x")]),
                values(&[json!(["a b"]), json!(5), json!([1])]),
            ),
        ),
        (
            "autoscope",
            pick(
                pat_only,
                values(&[json!(true), json!(false), json!("true"), json!("FALSE")]),
                values(&[json!("yes"), json!(1)]),
            ),
        ),
        (
            "client_id",
            pick(pat_only, values(&[json!(GUID), json!(GUID.to_uppercase())]), values(&[json!("x"), json!(1)])),
        ),
        (
            "kind",
            pick(
                (4, 1, 6, 1),
                values(&[json!("pat"), json!("sp_oauth_secret")]),
                values(&[json!("oauth"), json!("PAT"), json!(1)]),
            ),
        ),
        (
            "service_principal",
            pick((5, 1, 5, 1), values(&[json!(GUID), json!(GUID.to_uppercase())]), values(&[json!("x"), json!(2)])),
        ),
        // A key that is not a field: refused whatever its value.
        ("lifetime", prop_oneof![12 => Just(Pick::Absent), 1 => any_json().prop_map(Pick::Invalid)].boxed()),
    ];
    let (keys, strategies): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    strategies.prop_map(move |picks| keys.iter().copied().zip(picks).collect())
}

fn as_int(v: &Value) -> i64 {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())).expect("generated integers")
}

/// The contract's verdict on a generated target (§2, §9), computed from what was generated,
/// not from the parser.
fn contract_allows(picks: &[(&str, Pick)]) -> bool {
    let get = |k: &str| &picks.iter().find(|(key, _)| *key == k).expect("generated key").1;
    if picks.iter().any(|(_, p)| matches!(p, Pick::Invalid(_))) {
        return false;
    }
    if ["name", "workspace_url", "key_vault_url", "secret_name"].iter().any(|k| get(k).valid().is_none()) {
        return false;
    }
    let lifetime = get("lifetime_days").valid().map_or(90, as_int);
    let renew = get("renew_before_days").valid().map_or(30, as_int);
    if !(renew > 0 && renew < lifetime) {
        return false;
    }
    let sp = get("kind").valid().and_then(Value::as_str) == Some("sp_oauth_secret");
    if sp {
        get("service_principal").valid().is_some()
            && ["scopes", "autoscope", "client_id"].iter().all(|k| get(k).valid().is_none())
    } else {
        get("service_principal").valid().is_none()
    }
}

/// The accept half: a generated target is accepted exactly when the contract allows it, and
/// what is accepted holds the contract's invariants. The counts prove both halves ran.
#[test]
fn pat_targets_accept_exactly_the_contract() {
    let mut runner =
        TestRunner::new(RunnerConfig { cases: 2048, failure_persistence: None, ..RunnerConfig::default() });
    let (accepted, accepted_sp, rejected) = (Cell::new(0), Cell::new(0), Cell::new(0));
    // client_id needs a tenant and a credential that can federate (contract §8).
    let settings =
        [("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi"), ("IDENTITY_HEADER", "h"), ("AZURE_TENANT_ID", GUID)];
    let result = runner.run(&target_like(), |picks| {
        let mut obj = Map::new();
        for (k, p) in &picks {
            if let Some(v) = p.value() {
                obj.insert(k.to_string(), v.clone());
            }
        }
        let targets = json!([obj]).to_string();
        let c = Config::from_lookup(|k| {
            if k == "PAT_TARGETS" {
                Some(targets.clone())
            } else {
                settings.iter().find(|(s, _)| *s == k).map(|(_, v)| v.to_string())
            }
        });
        let allowed = contract_allows(&picks);
        prop_assert_eq!(c.is_ok(), allowed, "{} → {:?}", targets, c.as_ref().err());
        let Ok(c) = c else {
            rejected.set(rejected.get() + 1);
            return Ok(());
        };
        accepted.set(accepted.get() + 1);
        prop_assert_eq!(c.targets.len(), 1);
        let t = &c.targets[0];
        prop_assert!(valid_target_name(&t.name));
        prop_assert!(valid_secret_name(&t.secret_name));
        prop_assert!((1..=730).contains(&t.lifetime_days));
        prop_assert!(t.renew_before_days > 0 && t.renew_before_days < t.lifetime_days);
        prop_assert!(t.revoke_grace_hours <= 720);
        prop_assert!(t.key_vault_url.starts_with("https://") && !t.key_vault_url.ends_with('/'));
        prop_assert!(!t.workspace_url.contains('@') && !t.key_vault_url.contains('@'));
        match &t.kind {
            Kind::Pat { client_id, .. } => {
                prop_assert!(t.service_principal().is_none());
                if let Some(c) = client_id {
                    prop_assert_eq!(c.as_str(), GUID);
                }
            }
            Kind::SpOauthSecret { service_principal } => {
                accepted_sp.set(accepted_sp.get() + 1);
                prop_assert_eq!(service_principal.as_str(), GUID);
                prop_assert!(t.client_id().is_none());
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (a, s, r) = (accepted.get(), accepted_sp.get(), rejected.get());
    eprintln!("PAT_TARGETS fuzz: {a} accepted ({s} sp_oauth_secret), {r} rejected");
    assert!(a >= 40, "only {a} generated targets were accepted: the accept branch barely ran");
    assert!(s > 0, "no sp_oauth_secret target was accepted");
    assert!(r >= 40, "only {r} generated targets were rejected");
}
