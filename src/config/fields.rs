//! THE table of target fields, and the builder that reads a target off it.
//!
//! Each field of a target is one row of [`FIELDS`]: its JSON key in `PAT_TARGETS`, its flat
//! setting (the one-target form without `PAT_TARGETS`), how its text is parsed, the rule a
//! value must pass (which may also normalise it), whether it is required, its default, which
//! kinds of target accept it, and where it goes in [`Target`]. Both forms of configuration are
//! read by the same code off the same rows, so they cannot drift apart, error messages have one
//! shape (`targets[2].secret_name: …` / `PAT_SECRET_NAME: …`), and adding a field means adding
//! a row (and its [`Target`] field). Rules that relate several fields are named functions in
//! [`super::checks`].

use crate::logging::untrusted;
use serde_json::Value;

use super::checks;
use super::clouds::Cloud;
use super::names::{
    is_guid, valid_scope, valid_secret_name, valid_target_name, valid_vault_name, valid_workspace_resource_id,
};
use super::target::{Kind, Target, TargetKind};
use super::urls::{normalize_vault_url, normalize_workspace_url, shown};

/// One field of a target.
pub struct Field {
    /// The key in a `PAT_TARGETS` object.
    pub key: &'static str,
    /// The flat setting that gives this field when `PAT_TARGETS` is unset; `None` when the flat
    /// form has no setting for it (the name is always its default).
    pub flat: Option<&'static str>,
    /// A second flat setting that gives the field in another form, used when `flat` is unset.
    pub alias: Option<Alias>,
    pub parser: Parser,
    pub rule: Rule,
    /// Required for every kind of target that accepts the field.
    pub required: bool,
    pub default: Fallback,
    /// Which kinds of target accept the field at all.
    pub kinds: Kinds,
    /// Stores a valid value into the target.
    pub set: fn(&mut Target, Val),
}

/// Reads a setting; `None` when unset or empty.
pub type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// `KEY_VAULT_NAME` for `KEY_VAULT_URL`: a flat setting whose text `derive` turns into the
/// field's text (reading other settings through the lookup), or the reason it cannot.
pub struct Alias {
    pub flat: &'static str,
    pub derive: fn(&str, &Lookup) -> Result<String, String>,
}

/// How a field's text is read. JSON values may also be strings (Terraform's `jsonencode` of a
/// string variable, hand-written numbers in quotes); empty strings count as unset everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    Text,
    Int,
    /// `true` / `false`, any case.
    Bool,
    /// A JSON array of strings, or comma-separated text.
    List,
}

/// What a valid value is; a rule may normalise the value (URLs, GUIDs in lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Any,
    TargetName,
    WorkspaceUrl,
    WorkspaceResourceId,
    VaultUrl,
    SecretName,
    /// An inclusive range.
    Range(i64, i64),
    Scopes,
    /// A GUID, stored in lower case; the text says what it identifies.
    Guid(&'static str),
    Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    None,
    /// Used in both forms.
    Always(Lit),
    /// Used in the flat form only (its one target needs a name and a conventional secret name;
    /// a `PAT_TARGETS` entry must say them).
    FlatOnly(Lit),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lit {
    Int(i64),
    Text(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kinds {
    All,
    Only(TargetKind),
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Text(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
}

// The accessors below are called only by a row's `set`, with the value its own parser made;
// `every_row_builds` runs each row, so a mismatch fails a test rather than a deployment.
impl Val {
    fn text(self) -> String {
        match self {
            Val::Text(s) => s,
            other => unreachable!("table row expects text, got {other:?}"),
        }
    }
    fn int(&self) -> i64 {
        match self {
            Val::Int(n) => *n,
            other => unreachable!("table row expects an integer, got {other:?}"),
        }
    }
    fn bool(&self) -> bool {
        match self {
            Val::Bool(b) => *b,
            other => unreachable!("table row expects a boolean, got {other:?}"),
        }
    }
    fn list(self) -> Vec<String> {
        match self {
            Val::List(l) => l,
            other => unreachable!("table row expects a list, got {other:?}"),
        }
    }
}

/// A row with no flat setting, not required, no default, for every kind.
const fn row(key: &'static str, parser: Parser, rule: Rule, set: fn(&mut Target, Val)) -> Field {
    Field {
        key,
        flat: None,
        alias: None,
        parser,
        rule,
        required: false,
        default: Fallback::None,
        kinds: Kinds::All,
        set,
    }
}

pub static NAME: Field = Field {
    required: true,
    default: Fallback::FlatOnly(Lit::Text("default")),
    ..row("name", Parser::Text, Rule::TargetName, |t, v| t.name = v.text())
};
/// Entra ID tokens are sent here, so only Azure Databricks hosts (and loopback emulators).
pub static WORKSPACE_URL: Field = Field {
    flat: Some("DATABRICKS_HOST"),
    required: true,
    ..row("workspace_url", Parser::Text, Rule::WorkspaceUrl, |t, v| t.workspace_url = v.text())
};
/// Set: the management-token headers are sent (the identity need not be a workspace member).
pub static WORKSPACE_RESOURCE_ID: Field = Field {
    flat: Some("DATABRICKS_WORKSPACE_RESOURCE_ID"),
    ..row("workspace_resource_id", Parser::Text, Rule::WorkspaceResourceId, |t, v| {
        t.workspace_resource_id = Some(v.text())
    })
};
pub static KEY_VAULT_URL: Field = Field {
    flat: Some("KEY_VAULT_URL"),
    alias: Some(Alias { flat: "KEY_VAULT_NAME", derive: vault_url_from_name }),
    required: true,
    ..row("key_vault_url", Parser::Text, Rule::VaultUrl, |t, v| t.key_vault_url = v.text())
};
pub static SECRET_NAME: Field = Field {
    flat: Some("PAT_SECRET_NAME"),
    required: true,
    default: Fallback::FlatOnly(Lit::Text("databricks-pat")),
    ..row("secret_name", Parser::Text, Rule::SecretName, |t, v| t.secret_name = v.text())
};
/// Databricks caps PATs by workspace setting and OAuth secrets at 730 days.
pub static LIFETIME_DAYS: Field = Field {
    flat: Some("PAT_LIFETIME_DAYS"),
    default: Fallback::Always(Lit::Int(90)),
    ..row("lifetime_days", Parser::Int, Rule::Range(1, 730), |t, v| t.lifetime_days = v.int() as u32)
};
/// Its bounds depend on `lifetime_days`: [`checks::renew_below_lifetime`].
pub static RENEW_BEFORE_DAYS: Field = Field {
    flat: Some("PAT_RENEW_BEFORE_DAYS"),
    default: Fallback::Always(Lit::Int(30)),
    ..row("renew_before_days", Parser::Int, Rule::Any, |t, v| t.renew_before_days = v.int() as u32)
};
/// At most 30 days: a superseded credential outliving that is a forgotten one.
pub static REVOKE_GRACE_HOURS: Field = Field {
    flat: Some("PAT_REVOKE_GRACE_HOURS"),
    default: Fallback::Always(Lit::Int(24)),
    ..row("revoke_grace_hours", Parser::Int, Rule::Range(0, 720), |t, v| t.revoke_grace_hours = v.int() as u32)
};
/// PAT scopes; an OAuth secret has none of its own (its tokens ask for scopes).
pub static SCOPES: Field = Field {
    flat: Some("PAT_SCOPES"),
    kinds: Kinds::Only(TargetKind::Pat),
    ..row("scopes", Parser::List, Rule::Scopes, |t, v| {
        if let Kind::Pat { scopes, .. } = &mut t.kind {
            *scopes = Some(v.list())
        }
    })
};
pub static AUTOSCOPE: Field = Field {
    flat: Some("PAT_AUTOSCOPE"),
    kinds: Kinds::Only(TargetKind::Pat),
    ..row("autoscope", Parser::Bool, Rule::Any, |t, v| {
        if let Kind::Pat { autoscope, .. } = &mut t.kind {
            *autoscope = Some(v.bool())
        }
    })
};
/// Contract §8; an OAuth secret already belongs to `service_principal`, and the service's own
/// identity (a workspace admin) manages it.
pub static CLIENT_ID: Field = Field {
    flat: Some("PAT_CLIENT_ID"),
    kinds: Kinds::Only(TargetKind::Pat),
    ..row("client_id", Parser::Text, Rule::Guid("the application (client) id of an Entra app registration"), |t, v| {
        if let Kind::Pat { client_id, .. } = &mut t.kind {
            *client_id = Some(v.text())
        }
    })
};
pub static KIND: Field = Field {
    flat: Some("PAT_KIND"),
    default: Fallback::Always(Lit::Text("pat")),
    // `finish` stores the kind before any other field, so the kind's own fields land in it.
    ..row("kind", Parser::Text, Rule::Kind, |t, v| {
        t.kind = Kind::blank(TargetKind::from_name(&v.text()).unwrap_or_default())
    })
};
/// Contract §9: whose OAuth secret a `sp_oauth_secret` target holds.
pub static SERVICE_PRINCIPAL: Field = Field {
    flat: Some("PAT_SERVICE_PRINCIPAL"),
    required: true,
    kinds: Kinds::Only(TargetKind::SpOauthSecret),
    ..row(
        "service_principal",
        Parser::Text,
        Rule::Guid("the application id of a Databricks service principal"),
        |t, v| {
            if let Kind::SpOauthSecret { service_principal } = &mut t.kind {
                *service_principal = v.text()
            }
        },
    )
};
/// Contract §10: PATs only; needs workspace admin (the Token Management API).
pub static KEEP_WHILE_USED: Field = Field {
    flat: Some("PAT_KEEP_WHILE_USED"),
    kinds: Kinds::Only(TargetKind::Pat),
    ..row("keep_while_used", Parser::Bool, Rule::Any, |t, v| {
        if let Kind::Pat { keep_while_used, .. } = &mut t.kind {
            *keep_while_used = v.bool()
        }
    })
};

/// Every target field, in the order messages and `known fields` list them.
pub static FIELDS: &[&Field] = &[
    &NAME,
    &WORKSPACE_URL,
    &WORKSPACE_RESOURCE_ID,
    &KEY_VAULT_URL,
    &SECRET_NAME,
    &LIFETIME_DAYS,
    &RENEW_BEFORE_DAYS,
    &REVOKE_GRACE_HOURS,
    &SCOPES,
    &AUTOSCOPE,
    &CLIENT_ID,
    &KIND,
    &SERVICE_PRINCIPAL,
    &KEEP_WHILE_USED,
];

/// `KEY_VAULT_NAME` → `https://{name}.{the vault suffix of the workspace's cloud}`.
fn vault_url_from_name(name: &str, get: &Lookup) -> Result<String, String> {
    if !valid_vault_name(name) {
        return Err(format!(
            "\"{}\" is not a valid Key Vault name (3-24 letters, digits and hyphens, starting with a letter)",
            shown(name)
        ));
    }
    let workspace = WORKSPACE_URL.flat.and_then(get).unwrap_or_default();
    Ok(format!("https://{name}.{}", Cloud::of_workspace(&workspace).vault_suffix()))
}

/// Every flat setting of the table (aliases included).
pub fn flat_settings() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().flat_map(|f| f.flat.into_iter().chain(f.alias.as_ref().map(|a| a.flat)))
}

/// Where a target came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `PAT_TARGETS[i]`.
    Json(usize),
    /// The flat settings.
    Flat,
}

impl Source {
    /// The prefix of a message about field `f`: `targets[2].secret_name` or `PAT_SECRET_NAME`.
    pub fn at(self, f: &Field) -> String {
        match self {
            Source::Json(i) => format!("targets[{i}].{}", f.key),
            Source::Flat => f.flat.unwrap_or(f.key).to_string(),
        }
    }

    /// How a message names field `f` in passing: `kind` or `PAT_KIND`.
    pub fn name(self, f: &Field) -> &'static str {
        match self {
            Source::Json(_) => f.key,
            Source::Flat => f.flat.unwrap_or(f.key),
        }
    }
}

/// What reading one field gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Absent,
    Given(Val),
    Defaulted(Val),
    /// Invalid; the error is already reported.
    Failed,
}

impl Slot {
    pub fn value(&self) -> Option<&Val> {
        match self {
            Slot::Given(v) | Slot::Defaulted(v) => Some(v),
            Slot::Absent | Slot::Failed => None,
        }
    }
}

/// One target's fields as read, aligned with [`FIELDS`].
pub struct Read {
    pub source: Source,
    slots: Vec<Slot>,
}

impl Read {
    pub fn slot(&self, f: &Field) -> &Slot {
        let i = FIELDS.iter().position(|r| std::ptr::eq(*r, f)).expect("a row of FIELDS");
        &self.slots[i]
    }

    pub fn rows(&self) -> impl Iterator<Item = (&'static Field, &Slot)> {
        FIELDS.iter().copied().zip(&self.slots)
    }

    pub fn int(&self, f: &Field) -> Option<i64> {
        match self.slot(f).value() {
            Some(Val::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// The target's kind, or `None` when `kind` itself was invalid.
    pub fn kind(&self) -> Option<TargetKind> {
        match self.slot(&KIND).value() {
            Some(Val::Text(s)) => TargetKind::from_name(s),
            _ => None,
        }
    }
}

/// Reads `PAT_TARGETS`. A target with any problem is left out (and every problem reported);
/// each target keeps its index, for messages about it.
pub fn read_json_targets(json: &str, errs: &mut Vec<String>) -> Vec<(Source, Target)> {
    read_targets_document("PAT_TARGETS", json, errs)
}

/// Reads a JSON array of targets that `setting` supplied (`PAT_TARGETS`, or the contents of
/// `PAT_TARGETS_FILE` or `PAT_TARGETS_BLOB`); problems name `setting` and `targets[i]`.
pub fn read_targets_document(setting: &str, json: &str, errs: &mut Vec<String>) -> Vec<(Source, Target)> {
    let value: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            errs.push(format!("{setting}: not valid JSON ({e})"));
            return Vec::new();
        }
    };
    let Value::Array(items) = value else {
        errs.push(format!("{setting}: must be a JSON array of target objects"));
        return Vec::new();
    };
    if items.is_empty() {
        errs.push(format!("{setting}: the array is empty; configure at least one target"));
    }
    items.iter().enumerate().filter_map(|(i, item)| read_json_target(i, item, errs)).collect()
}

fn read_json_target(i: usize, item: &Value, errs: &mut Vec<String>) -> Option<(Source, Target)> {
    let Value::Object(obj) = item else {
        errs.push(format!("targets[{i}]: must be a JSON object"));
        return None;
    };
    let before = errs.len();
    for key in obj.keys() {
        if !FIELDS.iter().any(|f| f.key == key) {
            let known: Vec<_> = FIELDS.iter().map(|f| f.key).collect();
            errs.push(format!(
                "targets[{i}]: unknown field \"{}\" (known fields: {})",
                untrusted(key),
                known.join(", ")
            ));
        }
    }
    let source = Source::Json(i);
    let slots = FIELDS
        .iter()
        .map(|f| {
            let parsed = match obj.get(f.key).filter(|v| !v.is_null()) {
                None => Ok(None),
                Some(v) => parse_json(f.parser, v),
            };
            settle(f, source, parsed, false, errs)
        })
        .collect();
    let t = finish(Read { source, slots }, errs);
    if errs.len() == before { t.map(|t| (source, t)) } else { None }
}

/// Reads the one target of the flat form (`DATABRICKS_HOST`, `KEY_VAULT_URL`, …).
pub fn read_flat_target(get: &Lookup, errs: &mut Vec<String>) -> Option<(Source, Target)> {
    let before = errs.len();
    let source = Source::Flat;
    let slots = FIELDS
        .iter()
        .map(|f| {
            let text = f.flat.and_then(get);
            let parsed = match (text, &f.alias) {
                (Some(text), _) => parse_flat(f.parser, &text),
                (None, Some(alias)) => match get(alias.flat) {
                    None => Ok(None),
                    Some(text) => match (alias.derive)(&text, get) {
                        Ok(derived) => parse_flat(f.parser, &derived),
                        Err(why) => {
                            errs.push(format!("{}: {why}", alias.flat));
                            return Slot::Failed;
                        }
                    },
                },
                (None, None) => Ok(None),
            };
            settle(f, source, parsed, true, errs)
        })
        .collect();
    let t = finish(Read { source, slots }, errs);
    if errs.len() == before {
        return t.map(|t| (source, t));
    }
    // Nothing that names a workspace or a vault is set: say what to set, beyond "is required".
    let mut wanted = [&WORKSPACE_URL, &KEY_VAULT_URL]
        .into_iter()
        .flat_map(|f| f.flat.into_iter().chain(f.alias.as_ref().map(|a| a.flat)));
    if wanted.all(|k| get(k).is_none()) {
        errs.push("no targets configured: set PAT_TARGETS (JSON array) or DATABRICKS_HOST and KEY_VAULT_URL".into());
    }
    None
}

/// Applies the rule (or the default) to what the parser gave, reporting any problem.
fn settle(f: &Field, source: Source, parsed: Result<Option<Val>, String>, flat: bool, errs: &mut Vec<String>) -> Slot {
    match parsed {
        Err(why) => {
            errs.push(format!("{}: {why}", source.at(f)));
            Slot::Failed
        }
        Ok(Some(v)) => match check(f.rule, v) {
            Ok(v) => Slot::Given(v),
            Err(whys) => {
                errs.extend(whys.into_iter().map(|why| format!("{}: {why}", source.at(f))));
                Slot::Failed
            }
        },
        Ok(None) => match f.default {
            Fallback::Always(lit) => Slot::Defaulted(lit.into()),
            Fallback::FlatOnly(lit) if flat => Slot::Defaulted(lit.into()),
            _ => Slot::Absent,
        },
    }
}

/// Runs the rules that span fields, then fills a target when nothing was wrong.
fn finish(read: Read, errs: &mut Vec<String>) -> Option<Target> {
    let before = errs.len();
    checks::required_fields(&read, errs);
    checks::fields_allowed_for_kind(&read, errs);
    checks::renew_below_lifetime(&read, errs);
    if errs.len() != before || read.slots.contains(&Slot::Failed) {
        return None;
    }
    // The kind first: the fields of a kind are stored into it.
    let mut t = Target { kind: Kind::blank(read.kind().unwrap_or_default()), ..Target::default() };
    for (f, slot) in FIELDS.iter().zip(read.slots) {
        if std::ptr::eq(*f, &KIND) {
            continue;
        }
        if let Slot::Given(v) | Slot::Defaulted(v) = slot {
            (f.set)(&mut t, v);
        }
    }
    Some(t)
}

impl From<Lit> for Val {
    fn from(l: Lit) -> Val {
        match l {
            Lit::Int(n) => Val::Int(n),
            Lit::Text(s) => Val::Text(s.to_string()),
        }
    }
}

fn parse_json(p: Parser, v: &Value) -> Result<Option<Val>, String> {
    match (p, v) {
        // Quoted values of any type arrive as strings; they mean what the flat form would.
        (_, Value::String(s)) => parse_flat(p, s),
        (Parser::Int, Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(Val::Int(i))),
            None => Err(format!("{n} is not an integer")),
        },
        (Parser::Bool, Value::Bool(b)) => Ok(Some(Val::Bool(*b))),
        (Parser::List, Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => out.push(s.trim().to_string()),
                    other => return Err(format!("every item must be a string, got {}", json_type(other))),
                }
            }
            Ok((!out.is_empty()).then_some(Val::List(out)))
        }
        (Parser::Text, other) => Err(format!("must be a string, got {}", json_type(other))),
        (Parser::Int, other) => Err(format!("must be an integer, got {}", json_type(other))),
        (Parser::Bool, other) => Err(format!("must be a boolean, got {}", json_type(other))),
        (Parser::List, other) => Err(format!("must be an array of strings, got {}", json_type(other))),
    }
}

fn parse_flat(p: Parser, s: &str) -> Result<Option<Val>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    match p {
        Parser::Text => Ok(Some(Val::Text(s.to_string()))),
        Parser::Int => {
            s.parse::<i64>().map(|n| Some(Val::Int(n))).map_err(|_| format!("\"{}\" is not an integer", untrusted(s)))
        }
        Parser::Bool => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(Some(Val::Bool(true))),
            "false" => Ok(Some(Val::Bool(false))),
            _ => Err(format!("\"{}\" must be true or false", untrusted(s))),
        },
        Parser::List => {
            let items: Vec<String> = s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
            Ok((!items.is_empty()).then_some(Val::List(items)))
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks (and normalises) one value; each problem is the text after `field: `.
fn check(rule: Rule, v: Val) -> Result<Val, Vec<String>> {
    let one = |why: String| Err(vec![why]);
    match (rule, v) {
        (Rule::Any, v) => Ok(v),
        (Rule::TargetName, Val::Text(n)) if !valid_target_name(&n) => one(format!(
            "\"{}\" is not a valid target name (lowercase letters, digits and hyphens, 1-63 characters, not starting with a hyphen)",
            untrusted(&n)
        )),
        (Rule::WorkspaceUrl, Val::Text(u)) => normalize_workspace_url(&u)
            .map(Val::Text)
            .map_err(|why| vec![format!("\"{}\" {why}", untrusted(&shown(&u)))]),
        (Rule::VaultUrl, Val::Text(u)) => {
            normalize_vault_url(&u).map(Val::Text).map_err(|why| vec![format!("\"{}\" {why}", untrusted(&shown(&u)))])
        }
        (Rule::WorkspaceResourceId, Val::Text(id)) if !valid_workspace_resource_id(&id) => one(format!(
            "\"{}\" is not the ARM id of a Microsoft.Databricks/workspaces resource (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Databricks/workspaces/<name>)",
            untrusted(&id)
        )),
        (Rule::SecretName, Val::Text(s)) if !valid_secret_name(&s) => one(format!(
            "\"{}\" is not a valid Key Vault secret name (1-127 letters, digits and hyphens)",
            untrusted(&s)
        )),
        (Rule::Range(lo, hi), Val::Int(n)) if !(lo..=hi).contains(&n) => {
            one(format!("{n} is out of range ({lo}..={hi})"))
        }
        (Rule::Scopes, Val::List(scopes)) => {
            let bad: Vec<String> = scopes
                .iter()
                .filter(|s| !valid_scope(s))
                .map(|s| format!("\"{}\" is not a valid token scope", untrusted(s)))
                .collect();
            if bad.is_empty() { Ok(Val::List(scopes)) } else { Err(bad) }
        }
        (Rule::Guid(what), Val::Text(g)) => {
            if is_guid(&g) {
                Ok(Val::Text(g.to_ascii_lowercase()))
            } else {
                one(format!("\"{}\" is not a GUID ({what})", untrusted(&g)))
            }
        }
        (Rule::Kind, Val::Text(k)) if TargetKind::from_name(&k).is_none() => {
            let names: Vec<_> = TargetKind::ALL.iter().map(|k| k.as_str()).collect();
            one(format!("\"{}\" is not one of {}", untrusted(&k), names.join(", ")))
        }
        (_, v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The configuration module's source outside its tests, file by file.
    const SOURCES: &[(&str, &str)] = &[
        ("checks.rs", include_str!("checks.rs")),
        ("clouds.rs", include_str!("clouds.rs")),
        ("fields.rs", include_str!("fields.rs")),
        ("host_json.rs", include_str!("host_json.rs")),
        ("mod.rs", include_str!("mod.rs")),
        ("names.rs", include_str!("names.rs")),
        ("settings.rs", include_str!("settings.rs")),
        ("target.rs", include_str!("target.rs")),
        ("urls.rs", include_str!("urls.rs")),
        ("warnings.rs", include_str!("warnings.rs")),
    ];

    fn non_test(src: &str) -> &str {
        src.split("#[cfg(test)]").next().unwrap()
    }

    fn spellings(word: &str) -> Vec<(&'static str, usize)> {
        let quoted = format!("\"{word}\"");
        SOURCES
            .iter()
            .map(|(file, src)| (*file, non_test(src).matches(&quoted).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    #[test]
    fn sources_list_is_complete() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/config");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".rs"))
            .collect();
        files.sort();
        let listed: Vec<&str> = SOURCES.iter().map(|(f, _)| *f).collect();
        assert_eq!(files, listed, "add new files of src/config to SOURCES");
    }

    /// A field is one row: its JSON key and its flat setting are spelled once, in the table,
    /// and every other use goes through the row. A second spelling (a match on the key, a
    /// hand-written message) would be a place to forget when the field changes.
    #[test]
    fn every_field_is_spelled_once() {
        for f in FIELDS {
            assert_eq!(FIELDS.iter().filter(|g| g.key == f.key).count(), 1, "{} has two rows", f.key);
            assert_eq!(spellings(f.key), [("fields.rs", 1)], "JSON key {:?} outside its row", f.key);
            for flat in f.flat.into_iter().chain(f.alias.as_ref().map(|a| a.flat)) {
                assert_eq!(flat_settings().filter(|g| *g == flat).count(), 1, "{flat} read for two fields");
                assert_eq!(spellings(flat), [("fields.rs", 1)], "flat setting {flat:?} outside its row");
            }
        }
        // The two fields of contract §9, by name, so that this test cannot pass by losing them.
        assert_eq!(FIELDS.iter().filter(|f| f.key == "kind" && f.flat == Some("PAT_KIND")).count(), 1);
        assert_eq!(
            FIELDS.iter().filter(|f| f.key == "service_principal" && f.flat == Some("PAT_SERVICE_PRINCIPAL")).count(),
            1
        );
        assert_eq!(spellings("service_principal"), [("fields.rs", 1)]);
        assert_eq!(spellings("PAT_SERVICE_PRINCIPAL"), [("fields.rs", 1)]);
    }

    fn valid_text(f: &Field) -> Val {
        match f.rule {
            Rule::TargetName => Val::Text("a".into()),
            Rule::WorkspaceUrl => Val::Text("adb-1.2.azuredatabricks.net".into()),
            Rule::WorkspaceResourceId => {
                Val::Text("/subscriptions/1/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/w".into())
            }
            Rule::VaultUrl => Val::Text("https://kv.vault.azure.net".into()),
            Rule::SecretName => Val::Text("s".into()),
            Rule::Range(_, hi) => Val::Int(hi),
            Rule::Scopes => Val::List(vec!["sql".into()]),
            Rule::Guid(_) => Val::Text("0A1B2C3D-0000-4000-8000-00000000ABCD".into()),
            Rule::Kind => Val::Text("sp_oauth_secret".into()),
            Rule::Any => match f.parser {
                Parser::Int => Val::Int(7),
                Parser::Bool => Val::Bool(true),
                Parser::List => Val::List(vec!["x".into()]),
                Parser::Text => Val::Text("x".into()),
            },
        }
    }

    /// A field a kind does not have, or has not set: `null`, `""` or `false`.
    fn unset(v: &Value) -> bool {
        matches!(v, Value::Null | Value::Bool(false)) || v.as_str() == Some("")
    }

    /// Every row's parser, rule and setter agree on the value's type, every default passes its
    /// own rule, and every row stores into a distinct field of the target.
    #[test]
    fn every_row_builds() {
        let mut touched = std::collections::BTreeSet::new();
        for f in FIELDS {
            let v = check(f.rule, valid_text(f)).unwrap_or_else(|e| panic!("{}: {e:?}", f.key));
            // A row of one kind stores into a target of that kind; `kind` itself into a PAT's.
            let kind = match f.kinds {
                Kinds::Only(k) => k,
                Kinds::All => TargetKind::Pat,
            };
            let mut t = Target { kind: Kind::blank(kind), ..Target::default() };
            let blank = serde_json::to_value(&t).unwrap();
            (f.set)(&mut t, v);
            let after = serde_json::to_value(&t).unwrap();
            let changed: Vec<String> = after
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, v)| blank[k.as_str()] != **v && !(unset(&blank[k.as_str()]) && unset(v)))
                .map(|(k, _)| k.clone())
                .collect();
            assert_eq!(changed, [f.key], "row {} stores into {changed:?}", f.key);
            assert!(touched.insert(f.key));
            if let Fallback::Always(l) | Fallback::FlatOnly(l) = f.default {
                assert!(check(f.rule, l.into()).is_ok(), "default of {} breaks its rule", f.key);
            }
        }
        let blank = serde_json::to_value(Target::default()).unwrap();
        // And every field of Target has a row.
        assert_eq!(blank.as_object().unwrap().len(), FIELDS.len());
    }

    fn flat(vars: &[(&str, &str)]) -> Result<Target, Vec<String>> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        let mut errs = Vec::new();
        let t = read_flat_target(&|k| map.get(k).map(|v| v.to_string()).filter(|v| !v.is_empty()), &mut errs);
        if errs.is_empty() { Ok(t.unwrap().1) } else { Err(errs) }
    }

    fn json(targets: &str) -> Result<Vec<Target>, Vec<String>> {
        let mut errs = Vec::new();
        let t = read_json_targets(targets, &mut errs);
        if errs.is_empty() { Ok(t.into_iter().map(|(_, t)| t).collect()) } else { Err(errs) }
    }

    const WS: (&str, &str) = ("DATABRICKS_HOST", "adb-1.2.azuredatabricks.net");
    const KV: (&str, &str) = ("KEY_VAULT_URL", "https://kv.vault.azure.net");

    #[test]
    fn flat_form_defaults() {
        let t = flat(&[WS, ("KEY_VAULT_NAME", "my-vault")]).unwrap();
        assert_eq!(t.name, "default");
        assert_eq!(t.workspace_url, "https://adb-1.2.azuredatabricks.net");
        assert_eq!(t.key_vault_url, "https://my-vault.vault.azure.net");
        assert_eq!(t.secret_name, "databricks-pat");
        assert_eq!((t.lifetime_days, t.renew_before_days, t.revoke_grace_hours), (90, 30, 24));
        assert_eq!(t.kind, Kind::blank(TargetKind::Pat));
    }

    /// `KEY_VAULT_NAME` expands with the Key Vault suffix of the workspace's cloud.
    #[test]
    fn key_vault_name_follows_the_workspace_cloud() {
        for (host, want) in [
            ("adb-1.2.azuredatabricks.net", "https://kv1.vault.azure.net"),
            ("https://adb-1.2.databricks.azure.us", "https://kv1.vault.usgovcloudapi.net"),
            ("adb-1.2.databricks.azure.cn", "https://kv1.vault.azure.cn"),
            ("http://127.0.0.1:9000", "https://kv1.vault.azure.net"),
        ] {
            let t = flat(&[("DATABRICKS_HOST", host), ("KEY_VAULT_NAME", "kv1")]).unwrap();
            assert_eq!(t.key_vault_url, want, "{host}");
        }
        // The URL wins over the name.
        let t = flat(&[WS, KV, ("KEY_VAULT_NAME", "kv1")]).unwrap();
        assert_eq!(t.key_vault_url, "https://kv.vault.azure.net");
        // A bad name is reported with the rest, not instead of it.
        let e = flat(&[WS, ("KEY_VAULT_NAME", "1bad"), ("PAT_LIFETIME_DAYS", "0")]).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("KEY_VAULT_NAME: \"1bad\" is not a valid Key Vault name"), "{e:?}");
        assert!(e[1].starts_with("PAT_LIFETIME_DAYS: 0 is out of range"), "{e:?}");
    }

    #[test]
    fn json_and_flat_read_the_same_rows() {
        let t = json(
            r#"[{"name":"a","workspace_url":"adb-1.2.azuredatabricks.net","key_vault_url":"https://kv.vault.azure.net/",
                 "secret_name":"s","lifetime_days":"60","renew_before_days":20,"revoke_grace_hours":0,
                 "scopes":"sql, unity-catalog","autoscope":"TRUE","workspace_resource_id":" /subscriptions/1/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/w "}]"#,
        )
        .unwrap()
        .remove(0);
        let f = flat(&[
            WS,
            KV,
            ("PAT_SECRET_NAME", "s"),
            ("PAT_LIFETIME_DAYS", "60"),
            ("PAT_RENEW_BEFORE_DAYS", "20"),
            ("PAT_REVOKE_GRACE_HOURS", "0"),
            ("PAT_SCOPES", "sql,unity-catalog,"),
            ("PAT_AUTOSCOPE", "true"),
            (
                "DATABRICKS_WORKSPACE_RESOURCE_ID",
                "/subscriptions/1/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/w",
            ),
        ])
        .unwrap();
        assert_eq!(Target { name: "default".into(), ..t }, f);
    }

    /// Each row's typing, in both forms: (JSON value, flat text, message fragment or None).
    #[test]
    fn parsers_table() {
        let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
            // (field, JSON value, flat text → expected error fragment, or None for accepted)
            ("lifetime_days", "1.5", None, Some("1.5 is not an integer")),
            ("lifetime_days", "\"ninety\"", Some("ninety"), Some("\"ninety\" is not an integer")),
            ("lifetime_days", "true", None, Some("must be an integer, got a boolean")),
            ("lifetime_days", "\"60\"", Some("60"), None),
            ("lifetime_days", "\"\"", Some(""), None),
            ("autoscope", "1", None, Some("must be a boolean, got a number")),
            ("autoscope", "\"yes\"", Some("yes"), Some("\"yes\" must be true or false")),
            ("autoscope", "\"False\"", Some("False"), None),
            ("scopes", "5", None, Some("must be an array of strings, got a number")),
            ("scopes", "[1]", None, Some("every item must be a string, got a number")),
            ("scopes", "[]", Some(","), None),
            ("secret_name", "5", None, Some("must be a string, got a number")),
            ("secret_name", "\"  \"", Some("  "), None),
        ];
        for (key, jv, ft, want) in cases {
            let f = FIELDS.iter().find(|f| f.key == *key).unwrap();
            let v: Value = serde_json::from_str(jv).unwrap();
            let got = parse_json(f.parser, &v).err();
            assert_eq!(got.as_deref(), *want, "{key} = {jv}");
            if let Some(text) = ft {
                assert_eq!(parse_flat(f.parser, text).err().as_deref(), *want, "{key} = {text:?}");
            }
        }
    }

    #[test]
    fn unknown_fields_list_the_table() {
        let e = json(r#"[{"name":"a","workspace_url":1,"key_vault_url":"https://v","secret_name":"s","lifetime":3}]"#)
            .unwrap_err();
        let keys: Vec<_> = FIELDS.iter().map(|f| f.key).collect();
        assert!(
            e.contains(&format!("targets[0]: unknown field \"lifetime\" (known fields: {})", keys.join(", "))),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m == "targets[0].workspace_url: must be a string, got a number"), "{e:?}");
        assert!(keys.contains(&"kind") && keys.contains(&"service_principal"));
    }

    #[test]
    fn json_errors_name_target_and_field() {
        let e = json(
            r#"[{"name":"a","workspace_url":"https://adb-1.1.azuredatabricks.net","key_vault_url":"https://v","secret_name":"ok"},
                {"name":"b","workspace_url":"https://adb-1.1.azuredatabricks.net","key_vault_url":"https://v","secret_name":"s2"},
                {"name":"c","workspace_url":"https://adb-1.1.azuredatabricks.net","key_vault_url":"https://v","secret_name":"my_secret"}]"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            vec![
                "targets[2].secret_name: \"my_secret\" is not a valid Key Vault secret name (1-127 letters, digits and hyphens)"
            ]
        );
    }

    /// Every problem of a target at once, in table order, each naming its field.
    #[test]
    fn every_problem_at_once() {
        let e = json(
            r#"[{"name":"Bad","workspace_url":"https://example.com","key_vault_url":"http://kv","secret_name":"a_b",
                 "lifetime_days":0,"revoke_grace_hours":721,"scopes":["a b"],"client_id":"x","kind":"oauth"}]"#,
        )
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|m| m.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "targets[0].name",
                "targets[0].workspace_url",
                "targets[0].key_vault_url",
                "targets[0].secret_name",
                "targets[0].lifetime_days",
                "targets[0].revoke_grace_hours",
                "targets[0].scopes",
                "targets[0].client_id",
                "targets[0].kind",
            ],
            "{e:?}"
        );
    }

    /// Contract §2 "Empty settings count as unset", in JSON too.
    #[test]
    fn empty_values_are_unset() {
        let t = json(
            r#"[{"name":"a","workspace_url":"adb-1.2.azuredatabricks.net","key_vault_url":"https://kv.vault.azure.net",
                 "secret_name":"s","lifetime_days":"","scopes":"","autoscope":"","client_id":" ","kind":"","workspace_resource_id":null}]"#,
        )
        .unwrap()
        .remove(0);
        assert_eq!((t.lifetime_days, t.kind), (90, Kind::blank(TargetKind::Pat)));
    }
}
