//! Key Vault's secrets API as the world answers it (../shared/reference/keyvault-secrets-api.md,
//! and the emulators/ crate's knowledge of it):
//!
//! - every request needs `api-version`; one without a bearer token gets the `401` challenge
//!   (`WWW-Authenticate: Bearer authorization=…, resource="https://vault.azure.net"`) before
//!   anything else — the SDK sends its first request that way, bodiless;
//! - `PUT /secrets/{name}` stores a new version; `created` has whole seconds on the vault's
//!   clock; a soft-deleted or recovering name answers `409`;
//! - `GET /secrets/{name}/` answers the latest version (with its value), `404 SecretNotFound` for
//!   an absent, soft-deleted or recovering secret, `403 SecretDisabled` for a disabled one;
//! - `GET /secrets/{name}/versions` pages of at most 25 items (no values) in no particular
//!   order, with an absolute `nextLink` carrying `$skiptoken`;
//! - every answer is dated by the vault's clock (`Date`), unless a fault drops it;
//! - faults: 429 with `Retry-After`, 5xx, spurious 404s, answers without `Date`; writes refused
//!   (429, or 400 quoting the submitted value), answered 5xx or 408, or not answered at all —
//!   each applied now, later or never.

use std::collections::BTreeMap;

use pat_rotator::databricks::tags as db;
use serde_json::{Value, json};
use time::Duration;

use super::{Landing, SecretState, SeenRead, Version, World};
use crate::scenario::{BurstKind, Service};
use crate::wire::{After, Answer, Call, Delivered, http_date};

/// The audience Key Vault's challenge names, and the scope a token for it is asked for.
pub const KV_RESOURCE: &str = "https://vault.azure.net";

/// A version id: 32 hex digits, random (so that two versions of one second are ordered by
/// nothing in particular).
pub fn version_hex(rng: &mut crate::rng::Rng) -> String {
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

fn kv_error(status: u16, code: &str, message: &str, inner: Option<&str>) -> Answer {
    let mut e = json!({"code": code, "message": message});
    if let Some(i) = inner {
        e["innererror"] = json!({"code": i});
    }
    Answer::json(status, json!({ "error": e })).header("x-ms-error-code", code)
}

/// How a write's outcome goes, drawn per write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Apply {
    Now,
    Later,
    Never,
}

impl World {
    fn not_found(&mut self, name: &str) -> Answer {
        let a = self.activity();
        kv_error(
            404,
            "SecretNotFound",
            &format!(
                "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. ({a})"
            ),
            None,
        )
    }

    fn attributes(v: &Version) -> Value {
        let mut a = json!({
            "enabled": v.enabled, "created": v.created, "updated": v.created,
            "recoverableDays": 90, "recoveryLevel": "Recoverable+Purgeable",
        });
        if let Some(exp) = v.exp {
            a["exp"] = json!(exp);
        }
        a
    }

    /// A SecretBundle (with the value) or a SecretItem (without).
    fn bundle(v: &Version, with_value: bool) -> Value {
        let mut b = json!({"id": v.id, "attributes": Self::attributes(v)});
        if with_value {
            b["value"] = json!(v.value);
        }
        if let Some(ct) = &v.content_type {
            b["contentType"] = json!(ct);
        }
        if !v.tags.is_empty() {
            b["tags"] = json!(v.tags);
        }
        b
    }

    pub(super) fn keyvault(&mut self, _process: u32, inv: u32, sent: Duration, call: &Call) -> Answer {
        let host = call.host.clone();
        let who = Self::who(inv);
        let short = host.split('.').next().unwrap_or_default().to_string();
        if call.param("api-version").is_none() {
            return kv_error(400, "BadParameter", "The 'api-version' query parameter is missing.", None);
        }
        let segs: Vec<&str> = call.path.trim_start_matches('/').split('/').collect();
        enum Op {
            Set(String),
            Get(String),
            Versions(String),
        }
        let op = match (call.method.as_str(), segs.as_slice()) {
            ("PUT", ["secrets", n]) if !n.is_empty() => Op::Set(n.to_string()),
            ("GET", ["secrets", n, "versions"]) => Op::Versions(n.to_string()),
            ("GET", ["secrets", n] | ["secrets", n, ""]) if !n.is_empty() => Op::Get(n.to_string()),
            _ => return kv_error(404, "NotFound", "The requested operation is not supported.", None),
        };
        // Authentication, before the body is read.
        let challenge = |msg: &str| {
            kv_error(401, "Unauthorized", msg, None).header(
                "www-authenticate",
                format!(
                    "Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"{KV_RESOURCE}\"",
                    super::TENANT
                ),
            )
        };
        let Some(token) = call.bearer.as_deref() else {
            return challenge("AKV10000: Request is missing a Bearer or PoP token.");
        };
        match self.issued.get(token) {
            None => return challenge("AKV10046: Unable to parse or validate the token: unknown token."),
            Some(i) if i.audience.trim_end_matches('/') != KV_RESOURCE => {
                return challenge("AKV10022: Invalid audience.");
            }
            Some(_) => {}
        }
        let f = self.sc.faults.clone();
        let date = (!self.fault(Service::Vault, Some(BurstKind::NoDate), f.kv_no_date)).then(|| self.vault_now(&host));
        let dated = |mut a: Answer, w: &mut World| {
            if let Some(d) = date {
                a = a.header("date", http_date(d));
            }
            a.after = After::Answer(w.delay_after());
            a
        };
        let name = match &op {
            Op::Set(n) | Op::Get(n) | Op::Versions(n) => n.clone(),
        };
        let targets = self.targets_of_secret(inv, &host, &name);

        // Reads: throttled or failing until the client's retries give up, spurious 404s.
        if !matches!(op, Op::Set(_)) && self.fault(Service::Vault, Some(BurstKind::Errors), f.kv_error) {
            self.per_mut(inv, &targets, |p| p.reads_ok = false);
            self.read_failed(inv);
            let a = self.activity();
            // One in nine of these (by request number: no draw, so that other schedules stay
            // as they were) is an RBAC refusal, as while a role assignment propagates: a 403
            // whose message names the caller.
            let answer = if self.stats.requests.is_multiple_of(9) {
                self.note(&who, |_| format!("{short} GET {name} → 403 ForbiddenByRbac"));
                let action = if matches!(op, Op::Versions(_)) { "listSecretVersions" } else { "getSecret" };
                kv_error(
                    403,
                    "Forbidden",
                    &format!(
                        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={};iss=https://sts.windows.net/{}/\r\nAction: 'Microsoft.KeyVault/vaults/secrets/{action}/action'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/microsoft.keyvault/vaults/{short}/secrets/{name}'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: {short};location=westeurope\r\n ({a})",
                        super::SERVICE_OID,
                        super::SERVICE_OID,
                        super::TENANT
                    ),
                    Some("ForbiddenByRbac"),
                )
            } else if self.rng.chance(500) {
                self.note(&who, |_| format!("{short} GET {name} → 429"));
                kv_error(
                    429,
                    "Throttled",
                    &format!("Request was not processed because too many requests were received. ({a})"),
                    None,
                )
                .header("retry-after", "2")
            } else {
                let s = *self.rng.pick(&[500u16, 503]);
                self.note(&who, |_| format!("{short} GET {name} → {s}"));
                kv_error(s, "ServiceUnavailable", &format!("The service is unavailable, try again later. ({a})"), None)
            };
            return dated(answer, self);
        }

        match op {
            Op::Get(name) => {
                let spurious = self.fault(Service::Vault, Some(BurstKind::NotFound), f.kv_not_found);
                let state = self.secret(&host, &name).map(|s| (s.state, s.versions.last().cloned()));
                let answer = match state {
                    Some((SecretState::Live, Some(v))) if !spurious => {
                        if v.enabled {
                            let read = SeenRead { version: v.clone(), vault_at: date };
                            self.note(&who, |w| {
                                format!(
                                    "{short} GET {name} → {}{}",
                                    w.describe_version(&v),
                                    if date.is_none() { ", no Date" } else { "" }
                                )
                            });
                            Answer::json(200, Self::bundle(&v, true))
                                .deliver(Delivered::Read { targets: targets.clone(), read: Some(read) })
                        } else {
                            self.note(&who, |_| format!("{short} GET {name} → 403 SecretDisabled ({})", v.short()));
                            self.per_mut(inv, &targets, |p| p.saw_disabled = true);
                            kv_error(
                                403,
                                "Forbidden",
                                "Operation get is not allowed on a disabled secret.",
                                Some("SecretDisabled"),
                            )
                            .deliver(Delivered::Read { targets: targets.clone(), read: None })
                        }
                    }
                    other => {
                        self.per_mut(inv, &targets, |p| p.reads_ok = false);
                        self.read_failed(inv);
                        let why = match other {
                            _ if spurious => "a spurious 404",
                            Some((SecretState::Deleted, _)) => "soft-deleted",
                            Some((SecretState::Recovering, _)) => "being recovered",
                            _ => "no secret",
                        };
                        self.note(&who, |_| format!("{short} GET {name} → 404 ({why})"));
                        let dated_at = date.map(|d| d.unix_timestamp());
                        self.per_mut(inv, &targets, |p| {
                            p.saw_absent = true;
                            p.absent_dates.push(dated_at);
                        });
                        self.not_found(&name).deliver(Delivered::Read { targets: targets.clone(), read: None })
                    }
                };
                dated(answer, self)
            }
            Op::Versions(name) => {
                let live =
                    self.secret(&host, &name).filter(|s| s.state == SecretState::Live).map(|s| s.versions.clone());
                let Some(versions) = live else {
                    self.per_mut(inv, &targets, |p| p.reads_ok = false);
                    self.read_failed(inv);
                    self.note(&who, |_| format!("{short} GET {name}/versions → 404"));
                    let a = self.not_found(&name);
                    return dated(a, self);
                };
                let max = call
                    .param("maxresults")
                    .and_then(|m| m.parse::<usize>().ok())
                    .filter(|m| (1..=25).contains(m))
                    .unwrap_or(25);
                let (offset, order) = match call.param("$skiptoken") {
                    Some(t) => {
                        let mut parts = t.split('-');
                        let o = parts.next().and_then(|x| x.parse::<usize>().ok()).unwrap_or(0);
                        let k = parts.next().and_then(|x| u64::from_str_radix(x, 16).ok()).unwrap_or(0);
                        (o, k)
                    }
                    None => (0, self.rng.next_u64()),
                };
                // No particular order: shuffled by each version's position under this
                // listing's key (a version written between two pages does not reorder others).
                let mut items: Vec<(u64, &Version)> =
                    versions.iter().enumerate().map(|(i, v)| (mix(order ^ mix(i as u64)), v)).collect();
                items.sort_by_key(|(k, _)| *k);
                let end = (offset + max).min(items.len());
                let page: Vec<Value> =
                    items.get(offset..end).unwrap_or_default().iter().map(|(_, v)| Self::bundle(v, false)).collect();
                let next = if end < items.len() {
                    json!(format!(
                        "https://{host}/secrets/{name}/versions?api-version=7.6&$skiptoken={end}-{order:016x}&maxresults={max}"
                    ))
                } else {
                    Value::Null
                };
                self.note(&who, |_| {
                    format!("{short} GET {name}/versions → {} of {} (from {offset})", page.len(), items.len())
                });
                let a = Answer::json(200, json!({"value": page, "nextLink": next}));
                dated(a, self)
            }
            Op::Set(name) => self.kv_set(inv, &host, &name, sent, call, targets, date),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn kv_set(
        &mut self,
        inv: u32,
        host: &str,
        name: &str,
        sent: Duration,
        call: &Call,
        targets: Vec<String>,
        date: Option<time::OffsetDateTime>,
    ) -> Answer {
        let who = Self::who(inv);
        let short = host.split('.').next().unwrap_or_default().to_string();
        let f = self.sc.faults.clone();
        let dated = |mut a: Answer, w: &mut World| {
            if let Some(d) = date {
                a = a.header("date", http_date(d));
            }
            a.after = After::Answer(w.delay_after());
            a
        };
        let Some(body) = call.json() else {
            return dated(
                kv_error(400, "BadParameter", "The request body is not a valid SecretSetParameters document.", None),
                self,
            );
        };
        let value = body["value"].as_str().unwrap_or_default().to_string();
        let tags: BTreeMap<String, String> = body["tags"]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        let content_type = body["contentType"].as_str().map(str::to_string);
        let exp = body["attributes"]["exp"].as_i64();
        self.check_write(inv, host, name, sent, &value, &tags);
        if let Some(x) = self.invs.get_mut(&inv) {
            for t in &targets {
                x.writes.entry(t.clone()).or_default().push(false);
            }
        }
        let refused_answer = Delivered::WriteRefused { targets: targets.clone() };

        let state = self.secret(host, name).map(|s| s.state).unwrap_or(SecretState::Live);
        if state != SecretState::Live {
            let a = self.activity();
            let (inner, text) = if state == SecretState::Deleted {
                (
                    "ObjectIsDeletedButRecoverable",
                    format!(
                        "Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged. ({a})"
                    ),
                )
            } else {
                (
                    "ObjectIsBeingRecovered",
                    format!("Secret {name} is currently being recovered and cannot be re-created; retry later. ({a})"),
                )
            };
            self.note(&who, |_| format!("{short} PUT {name} → 409 {inner}"));
            return dated(kv_error(409, "Conflict", &text, Some(inner)).deliver(refused_answer), self);
        }
        let version = Version {
            id: self.new_version_id(host, name),
            value: value.clone(),
            tags,
            content_type,
            created: 0,
            enabled: body["attributes"]["enabled"].as_bool().unwrap_or(true),
            exp,
            landed: Duration::ZERO,
            late: false,
            by: inv,
            writer: call.bearer.as_deref().and_then(|t| self.issued.get(t)).map(|i| i.identity.clone()),
        };
        // The fault: refused (not stored), a 5xx or 408 answer, or no answer at all.
        let refused = self.fault(Service::Vault, Some(BurstKind::Errors), f.kv_write_refused);
        let hang = !refused && self.fault(Service::Vault, Some(BurstKind::Timeouts), f.kv_write_hang);
        let fivexx = !refused && !hang && self.fault(Service::Vault, None, f.kv_write_5xx);
        if refused {
            let a = self.activity();
            let answer = if self.rng.chance(300) {
                self.note(&who, |_| format!("{short} PUT {name} → 400 quoting the value (not stored)"));
                kv_error(
                    400,
                    "BadParameter",
                    &format!(
                        "Property 'value' ('{value}') does not match the format required for the secret's content type. ({a})"
                    ),
                    None,
                )
            } else {
                self.note(&who, |_| format!("{short} PUT {name} → 429 (not stored)"));
                kv_error(
                    429,
                    "Throttled",
                    &format!("Request was not processed because too many requests were received. ({a})"),
                    None,
                )
                .header("retry-after", "1")
            };
            return dated(answer.deliver(refused_answer), self);
        }
        if !(hang || fivexx) {
            let v = self.store(host, name, version, false);
            self.per_mut(inv, &targets, |p| p.wrote = true);
            self.note(&who, |w| format!("{short} PUT {name} → 200 {}", w.describe_version(&v)));
            return dated(Answer::json(200, Self::bundle(&v, true)), self);
        }
        self.stats.unknown_writes += 1;
        let apply = *self.rng.pick(&[Apply::Now, Apply::Later, Apply::Never]);
        let status = *self.rng.pick(&[500u16, 502, 503, 504, 408]);
        let what = if hang { "no answer".to_string() } else { format!("{status}") };
        let mut landing = None;
        match apply {
            Apply::Now => {
                let v = self.store(host, name, version, false);
                self.per_mut(inv, &targets, |p| p.wrote = true);
                self.note(&who, |w| format!("{short} PUT {name} → {what}, but stored {}", w.describe_version(&v)));
            }
            Apply::Later => {
                let after = if self.rng.chance(800) {
                    self.rng.millis(1_000, 180_000)
                } else {
                    self.rng.millis(180_000, 600_000)
                };
                let when = self.now() + Duration::try_from(after).expect("fits");
                self.last_landing = self.last_landing.max(when);
                self.per_mut(inv, &targets, |p| p.wrote = true);
                self.note(&who, |_| format!("{short} PUT {name} → {what}; it lands at {}", crate::log::at(when)));
                let l = Landing { host: host.to_string(), name: name.to_string(), version, after, inv };
                landing = Some((self.schedule_landing(when, l), after));
            }
            Apply::Never => self.note(&who, |_| format!("{short} PUT {name} → {what} (never stored)")),
        }
        let a = self.activity();
        let mut answer = if hang {
            Answer { after: After::Hang, ..Answer::json(200, json!({})) }
        } else if status == 408 {
            dated(kv_error(408, "RequestTimeout", &format!("The request timed out. ({a})"), None), self)
        } else {
            dated(kv_error(status, "InternalServerError", &format!("An unexpected error occurred. ({a})"), None), self)
        };
        answer.landing = landing;
        answer
    }

    /// A version takes effect: it becomes the latest. Returns it as stored.
    pub(super) fn store(&mut self, host: &str, name: &str, mut v: Version, late: bool) -> Version {
        v.created = self.vault_now(host).unix_timestamp();
        v.landed = self.now();
        v.late = late;
        let by = v.by;
        let s = self.secret_mut(host, name);
        s.versions.push(v.clone());
        let stored_name = s.name.clone();
        let idx = s.versions.len() - 1;
        self.check_landing(by, host, name, idx);
        self.check_tags(by, host, name, &v);
        // Key Vault raises `SecretNewVersionCreated` for it (not in the quiet phase).
        if !self.quiet {
            self.raise(crate::scenario::EventKind::NewVersion, host, &stored_name, &v);
        }
        v
    }

    /// Key Vault raises an event about version `v` of a secret: Event Grid delivers it to the
    /// deployments subscribed to the vault (`crate::sim`).
    pub fn raise(&mut self, kind: crate::scenario::EventKind, host: &str, name: &str, v: &Version) {
        self.events_out.push(super::KvEvent {
            kind,
            host: host.to_string(),
            name: name.to_string(),
            id: v.id.clone(),
            exp: v.exp,
        });
        self.events_ready.notify_one();
    }

    /// A write that had no (good) answer lands now, unless the secret was deleted meanwhile.
    pub fn land(&mut self, l: Landing) {
        let state = self.secret(&l.host, &l.name).map(|s| s.state).unwrap_or(SecretState::Live);
        if state != SecretState::Live {
            self.note("vault", |_| format!("the late write of inv {} is lost: the secret is not live", l.inv));
            return;
        }
        let v = self.store(&l.host, &l.name, l.version, true);
        self.note("vault", |w| format!("the late write of inv {} lands: {}", l.inv, w.describe_version(&v)));
    }
}

/// SplitMix64's finaliser: a fixed shuffle of 64-bit keys.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The id tag a version names its credential by, of either kind.
pub fn named_id(v: &Version) -> Option<&str> {
    v.tag(db::TOKEN_ID).or(v.tag(db::SECRET_ID))
}
