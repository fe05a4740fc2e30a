//! An Azure Databricks workspace as the world answers it (../shared/reference/
//! databricks-token-api.md, databricks-oauth-secrets.md, and the emulators/ crate):
//!
//! - authentication: an Entra ID token for Azure Databricks (the managed identity is a member
//!   and an admin of every workspace), or a PAT — a revoked or expired one is refused with
//!   `403 Invalid access token.`;
//! - the Token API (`/api/2.0/token/{create,list,delete}`): the caller's own tokens, comment
//!   and times in milliseconds, a per-identity quota (`400 QUOTA_EXCEEDED`), an empty list as
//!   `{}`, a missing id as `404 RESOURCE_DOES_NOT_EXIST`;
//! - SCIM `Me` (how a new PAT is verified; it counts as the token's use) and SCIM
//!   `ServicePrincipals?filter=…`;
//! - the Token Management API's `GET /api/2.0/token-management/tokens/{id}` (`last_used_day`;
//!   `403` where the identity is no admin of it);
//! - the service principal secrets API (account-wide: a principal's secrets are the same in
//!   every workspace), at most five, paged by `next_page_token`, times in RFC 3339;
//! - `/oidc/v1/token` (client credentials, HTTP Basic): a new secret may be refused for a few
//!   seconds (propagation); a wrong or deleted one is `401 invalid_client`;
//! - every answer dated by the workspace's clock unless a fault drops `Date`; faults: 429 with
//!   `Retry-After`, 5xx, creates answered 5xx or not at all (applied or not), refused
//!   connections, deletes failing before or after their effect, verifications failing (now and
//!   then with a message quoting the credential presented).

use serde_json::{Value, json};
use time::Duration;
use time::format_description::well_known::Rfc3339;

use super::{Holder, SERVICE_APPID, World};
use crate::scenario::{BurstKind, PRINCIPALS, Service, WORKSPACES};
use crate::wire::{After, Answer, Call, Delivered, http_date};

/// Azure Databricks' first-party application: the audience of an Entra ID token for it.
pub const DATABRICKS_RESOURCE: &str = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d";
/// The most OAuth secrets a principal holds.
pub const SP_LIMIT: usize = 5;

fn db_error(status: u16, code: &str, message: &str) -> Answer {
    Answer::json(status, json!({"error_code": code, "message": message}))
}

/// The SCIM id of a principal in every workspace.
fn scim_of(app: &str) -> Option<String> {
    PRINCIPALS.iter().position(|p| p.eq_ignore_ascii_case(app)).map(|i| format!("{}", 7_000_001 + i))
}

fn app_of(scim: &str) -> Option<String> {
    PRINCIPALS.iter().enumerate().find(|(i, _)| format!("{}", 7_000_001 + i) == scim).map(|(_, a)| a.to_string())
}

/// Who calls.
enum Caller {
    /// An identity with an Entra ID token.
    Identity(String),
    /// A PAT (index into the world's credentials), acting as its owner.
    Pat(usize),
}

impl World {
    pub(super) fn databricks(&mut self, _process: u32, inv: u32, sent: Duration, call: &Call) -> Answer {
        let ws = call.host.clone();
        let f = self.sc.faults.clone();
        let date = (!self.fault(Service::Workspace, Some(BurstKind::NoDate), f.ws_no_date)).then(|| self.ws_now(&ws));
        let mut answer = self.databricks_inner(inv, sent, call, &ws);
        if date.is_none() {
            // A usage answer without `Date` cannot say which day is today: the token is kept.
            for d in &mut answer.delivered {
                if let Delivered::Usage { seen, .. } = d
                    && matches!(seen, super::UsageSeen::InUse | super::UsageSeen::NotInUse)
                {
                    *seen = super::UsageSeen::Keep("no Date");
                }
                if let Delivered::Listing { dated, .. } = d {
                    *dated = false;
                }
            }
        }
        if answer.after != After::Refused {
            if let Some(d) = date {
                answer = answer.header("date", http_date(d));
            }
            if answer.after == After::Answer(std::time::Duration::ZERO) {
                answer.after = After::Answer(self.delay_after());
            }
        }
        answer
    }

    fn databricks_inner(&mut self, inv: u32, sent: Duration, call: &Call, ws: &str) -> Answer {
        let who = Self::who(inv);
        let short = ws.split('.').next().unwrap_or_default().to_string();
        let f = self.sc.faults.clone();
        let path = call.path.clone();
        let method = call.method.as_str();
        if path == "/oidc/v1/token" && method == "POST" {
            return self.oidc_token(inv, call, &short);
        }
        let caller = match call.bearer.as_deref() {
            None => {
                return db_error(401, "401", "Credential was not sent or was of an unsupported type for this API.");
            }
            Some(t) => {
                if let Some(i) = self.issued.get(t) {
                    if i.audience.trim_end_matches('/') != DATABRICKS_RESOURCE {
                        return db_error(
                            401,
                            "401",
                            "Invalid access token: the Azure AD token's audience is not Azure Databricks.",
                        );
                    }
                    Caller::Identity(i.identity.clone())
                } else {
                    match self.creds.iter().position(|c| c.value == t) {
                        Some(i)
                            if self.live(&self.creds[i])
                                && matches!(&self.creds[i].holder, Holder::Pat { ws: w, .. } if w == ws) =>
                        {
                            Caller::Pat(i)
                        }
                        _ => {
                            self.note(&who, |_| format!("{short} {method} {path} → 403 Invalid access token."));
                            return db_error(403, "403", "Invalid access token.");
                        }
                    }
                }
            }
        };
        let owner = match &caller {
            Caller::Identity(o) => o.clone(),
            Caller::Pat(i) => match &self.creds[*i].holder {
                Holder::Pat { owner, .. } => owner.clone(),
                Holder::OAuth { .. } => unreachable!("a PAT caller"),
            },
        };
        let holder = Holder::Pat { ws: ws.to_string(), owner: owner.clone() };
        let segs: Vec<String> = path.trim_start_matches('/').split('/').map(str::to_string).collect();
        let sp_holder = if segs.len() >= 7 && segs[2] == "accounts" && segs[3] == "servicePrincipals" {
            app_of(&segs[4]).map(|app| Holder::OAuth { app })
        } else {
            None
        };
        let targets = match &sp_holder {
            Some(h) => self.targets_of_holder(inv, h),
            None => self.targets_of_holder(inv, &holder),
        };

        // Faults every endpoint may answer with, before any effect.
        let is_create =
            method == "POST" && (path == "/api/2.0/token/create" || (sp_holder.is_some() && segs.len() == 7));
        let is_delete =
            (method == "POST" && path == "/api/2.0/token/delete") || (method == "DELETE" && sp_holder.is_some());
        let is_verify = path == "/api/2.0/preview/scim/v2/Me";
        // A usage lookup (contract §10 "Usage"): until an answer reaches the invocation, the
        // token is kept for the run (a lookup that never answers is a failed one).
        let usage_id = (method == "GET")
            .then(|| path.strip_prefix("/api/2.0/token-management/tokens/"))
            .flatten()
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .map(str::to_string);
        if let Some(id) = &usage_id
            && let Some(x) = self.invs.get_mut(&inv)
        {
            x.usage.insert(id.clone(), super::UsageSeen::Keep("no answer"));
        }
        if is_create && self.fault(Service::Workspace, None, f.ws_create_refused) {
            self.note(&who, |_| format!("{short} {method} {path} → connection refused (nothing sent)"));
            return Answer::refused();
        }
        let rate = if is_verify { f.ws_verify_error } else { f.ws_error };
        if !is_create && !is_delete && self.fault(Service::Workspace, Some(BurstKind::Errors), rate) {
            if path == "/api/2.0/workspace-conf"
                && let Some(x) = self.invs.get_mut(&inv)
            {
                x.lifetime_cap_failed = true;
            }
            if !is_verify {
                self.per_mut(inv, &targets, |p| p.reads_ok = false);
                self.read_failed(inv);
            }
            let a = self.activity();
            let answer = if self.rng.chance(500) {
                self.note(&who, |_| format!("{short} {method} {path} → 429"));
                db_error(
                    429,
                    "REQUEST_LIMIT_EXCEEDED",
                    &format!("Too many requests. Please wait a moment and try again. ({a})"),
                )
                .header("retry-after", "1")
            } else {
                let s = *self.rng.pick(&[500u16, 503]);
                self.note(&who, |_| format!("{short} {method} {path} → {s}"));
                db_error(s, "TEMPORARILY_UNAVAILABLE", &format!("The service is temporarily unavailable. ({a})"))
            };
            return match usage_id {
                Some(id) => answer.deliver(Delivered::Usage { id, seen: super::UsageSeen::Keep("a failed lookup") }),
                None => answer,
            };
        }
        if let Some(id) = usage_id {
            return self.usage_answer(inv, ws, &short, &id);
        }

        match (method, path.as_str()) {
            ("GET", "/api/2.0/token/list") => {
                let now = self.now();
                let mine: Vec<usize> = (0..self.creds.len())
                    .filter(|i| self.creds[*i].holder == holder && self.live(&self.creds[*i]))
                    .collect();
                let infos: Vec<Value> = mine
                    .iter()
                    .map(|i| {
                        let c = &self.creds[*i];
                        let mut v = json!({
                            "token_id": c.id,
                            "creation_time": (c.created.unix_timestamp_nanos() / 1_000_000) as i64,
                            "expiry_time": c.expires.map(|e| (e.unix_timestamp_nanos() / 1_000_000) as i64).unwrap_or(-1),
                        });
                        if let Some(m) = &c.comment {
                            v["comment"] = json!(m);
                        }
                        v
                    })
                    .collect();
                let ids: Vec<String> = mine.iter().map(|i| self.creds[*i].id.clone()).collect();
                let _ = now;
                self.note(&who, |_| format!("{short} token/list → [{}]", ids.join(", ")));
                let a = if infos.is_empty() {
                    Answer::json(200, json!({}))
                } else {
                    Answer::json(200, json!({"token_infos": infos}))
                };
                a.deliver(Delivered::Listing {
                    holder: holder.clone(),
                    ids,
                    from: 0,
                    req: self.stats.requests,
                    dated: true,
                })
            }
            ("POST", "/api/2.0/token/create") => {
                let body = call.json().unwrap_or(Value::Null);
                let comment = body["comment"].as_str().map(str::to_string);
                let Some(lifetime) = body["lifetime_seconds"].as_i64().filter(|l| *l > 0) else {
                    return db_error(400, "INVALID_PARAMETER_VALUE", "requirement failed: Invalid timeout");
                };
                // A lifetime above the workspace's `maxTokenLifetimeDays`: refused (the reference
                // leaves open whether the real service refuses or caps; the emulators refuse).
                // Half the answers say so in words pat-rotator recognises, half do not.
                let cap = self.max_lifetime_days(ws);
                let targets_here = self.targets_of_comment(inv, comment.as_deref());
                if cap > 0 && lifetime > i64::from(cap) * 86_400 {
                    let worded = self.stats.requests.is_multiple_of(2);
                    if let Some(x) = self.invs.get_mut(&inv) {
                        x.lifetime_refused.extend(targets_here.into_iter().map(|t| (t, worded)));
                    }
                    self.note(&who, |_| format!("{short} token/create → 400 lifetime above {cap} days"));
                    let m = if worded {
                        format!(
                            "Requested token lifetime of {lifetime} seconds exceeds the maximum lifetime of {cap} days set by the workspace admin (maxTokenLifetimeDays)."
                        )
                    } else {
                        "requirement failed: the requested expiry is beyond what this workspace allows".to_string()
                    };
                    return db_error(400, "INVALID_PARAMETER_VALUE", &m);
                }
                if let Some(x) = self.invs.get_mut(&inv) {
                    for t in &targets_here {
                        x.lifetime_refused.remove(t);
                    }
                }
                let live = self.creds.iter().filter(|c| c.holder == holder && self.live(c)).count();
                let quota = self.quotas.get(ws).copied().unwrap_or(600);
                if live >= quota {
                    if let Some(x) = self.invs.get_mut(&inv) {
                        x.full.insert(holder.clone());
                    }
                    self.note(&who, |_| format!("{short} token/create → 400 QUOTA_EXCEEDED ({live} of {quota})"));
                    return db_error(400, "QUOTA_EXCEEDED", &format!("Cannot create more than {quota} tokens."));
                }
                self.create_answer(inv, sent, holder, comment, Duration::seconds(lifetime), &short, "token/create", |w, i| {
                    let c = &w.creds[i];
                    json!({"token_value": c.value, "token_info": {
                        "token_id": c.id,
                        "creation_time": (c.created.unix_timestamp_nanos() / 1_000_000) as i64,
                        "expiry_time": c.expires.map(|e| (e.unix_timestamp_nanos() / 1_000_000) as i64).unwrap_or(-1),
                        "comment": c.comment,
                    }})
                })
            }
            ("POST", "/api/2.0/token/delete") => {
                let id = call.json().and_then(|b| b["token_id"].as_str().map(str::to_string)).unwrap_or_default();
                let found = self.creds.iter().position(|c| c.id == id && c.holder == holder && self.live(c));
                self.delete_answer(inv, found, &id, &targets, &short, "token/delete")
            }
            ("GET", "/api/2.0/preview/scim/v2/Me") => {
                if let Caller::Pat(i) = caller {
                    // A verification: the PAT authenticated. Now and then the workspace refuses
                    // it anyway, quoting what it was sent.
                    if self.fault(Service::Workspace, None, f.ws_verify_error / 2) {
                        let value = self.creds[i].value.clone();
                        self.note(&who, |w| format!("{short} scim/Me with {} → 401 quoting the token", w.creds[i].id));
                        return db_error(
                            401,
                            "401",
                            &format!("Invalid access token: {value} was not accepted for this request"),
                        );
                    }
                    let now = self.now();
                    self.creds[i].last_used = now;
                    self.creds[i].used = Some(now);
                    self.called(inv, i);
                    self.note(&who, |w| format!("{short} scim/Me with {} → 200", w.creds[i].id));
                }
                Answer::json(200, json!({"id": "4200000000000001", "userName": SERVICE_APPID, "active": true}))
            }
            ("GET", "/api/2.0/workspace-conf") => {
                Answer::json(200, json!({"maxTokenLifetimeDays": self.max_lifetime_days(ws).to_string()}))
            }
            ("GET", "/api/2.0/preview/scim/v2/ServicePrincipals") => {
                let filter = call.param("filter").unwrap_or_default().to_string();
                let app = filter.split('"').nth(1).unwrap_or_default().to_ascii_lowercase();
                let resources: Vec<Value> = match scim_of(&app) {
                    Some(id) => vec![
                        json!({"id": id, "applicationId": app, "displayName": format!("sp {app}"), "active": true}),
                    ],
                    None => Vec::new(),
                };
                self.note(&who, |_| format!("{short} scim/ServicePrincipals {app} → {}", resources.len()));
                Answer::json(
                    200,
                    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": resources.len(), "Resources": resources}),
                )
            }
            _ if sp_holder.is_some() => {
                self.sp_secrets(inv, sent, call, sp_holder.expect("checked"), &segs, &targets, &short)
            }
            _ => db_error(404, "ENDPOINT_NOT_FOUND", &format!("No API found for '{method} {path}'")),
        }
    }

    /// `GET /api/2.0/token-management/tokens/{id}` (workspace admins; any identity's token):
    /// `{"token_info": TokenInfo}` with `last_used_day` (epoch milliseconds of the day, UTC,
    /// by the workspace's clock) once the token was used; `403` where the identity is no admin
    /// of the workspace's Token Management; `404 RESOURCE_DOES_NOT_EXIST` for a revoked or
    /// expired token. What it told the invocation is recorded for the checker (invariant 11).
    fn usage_answer(&mut self, inv: u32, ws: &str, short: &str, id: &str) -> Answer {
        let who = Self::who(inv);
        let ix = WORKSPACES.iter().position(|w| *w == ws).unwrap_or(0);
        if self.sc.usage_forbidden[ix] {
            if let Some(x) = self.invs.get_mut(&inv) {
                x.usage_forbidden.insert(ws.to_string());
                x.usage.remove(id);
            }
            self.note(&who, |_| format!("{short} token-management/tokens/{id} → 403"));
            return db_error(403, "PERMISSION_DENIED", "Only Admins can access token management APIs.");
        }
        let found = self
            .creds
            .iter()
            .position(|c| c.id == id && matches!(&c.holder, Holder::Pat { ws: w, .. } if w == ws) && self.live(c));
        let Some(i) = found else {
            self.note(&who, |_| format!("{short} token-management/tokens/{id} → 404"));
            return db_error(404, "RESOURCE_DOES_NOT_EXIST", &format!("Token with id {id} does not exist."))
                .deliver(Delivered::Usage { id: id.to_string(), seen: super::UsageSeen::Gone });
        };
        let c = self.creds[i].clone();
        let ms = |t: time::OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
        let mut info = json!({
            "token_id": c.id,
            "creation_time": ms(c.created),
            "expiry_time": c.expires.map(ms).unwrap_or(-1),
            "comment": c.comment,
            "owner_id": 4200000000000001u64,
            "created_by_username": SERVICE_APPID,
        });
        // The day of its last use by the workspace's clock (Databricks: "accurate up to 1
        // day"); never used, no field. Whether it counts as in use is judged against the
        // `Date` this answer carries — which a fault may drop (decided in `databricks`, after
        // this): the checker hears of it through `dated_usage`.
        let day = c.used.map(|u| self.ws_at(ws, u).date());
        if let Some(d) = day {
            info["last_used_day"] = json!(ms(d.midnight().assume_utc()));
        }
        let today = self.ws_now(ws).date();
        let seen = match day {
            None => super::UsageSeen::Keep("no last_used_day"),
            Some(d) if d >= today.previous_day().unwrap_or(today) => super::UsageSeen::InUse,
            Some(_) => super::UsageSeen::NotInUse,
        };
        self.note(&who, |_| {
            format!(
                "{short} token-management/tokens/{id} → last used {}",
                day.map(|d| d.to_string()).unwrap_or("never".into())
            )
        });
        Answer::json(200, json!({"token_info": info})).deliver(Delivered::Usage { id: id.to_string(), seen })
    }

    /// A create, as the workspace may act on it: answered, answered 5xx or not at all (each
    /// applied or not).
    #[allow(clippy::too_many_arguments)]
    fn create_answer(
        &mut self,
        inv: u32,
        sent: Duration,
        holder: Holder,
        comment: Option<String>,
        lifetime: Duration,
        short: &str,
        what: &str,
        render: impl Fn(&World, usize) -> Value,
    ) -> Answer {
        let who = Self::who(inv);
        let f = self.sc.faults.clone();
        let ambiguous = self.fault(Service::Workspace, Some(BurstKind::Timeouts), f.ws_create_ambiguous)
            || self.fault(Service::Workspace, Some(BurstKind::Errors), 0);
        let applied = !ambiguous || self.rng.chance(500);
        let hang = ambiguous && self.rng.chance(500);
        if ambiguous && !applied {
            self.note(&who, |_| {
                format!("{short} {what} → {} (nothing created)", if hang { "no answer" } else { "500" })
            });
        }
        let mut created = None;
        if applied {
            let at = self.issuer_at(&holder, self.now());
            let i = self.add_cred(holder.clone(), comment, at, lifetime, Some(inv));
            self.creds[i].requested = sent;
            if let Holder::OAuth { .. } = holder
                && !self.quiet
                && self.rng.chance(150)
            {
                let now = self.now();
                self.creds[i].accepted_from = now + Duration::seconds(self.rng.range(1, 20) as i64);
            }
            if let Some(x) = self.invs.get_mut(&inv) {
                x.created.push(i);
            }
            self.called(inv, i);
            self.check_create(inv, i);
            let id = self.creds[i].id.clone();
            if ambiguous {
                self.note(&who, |_| {
                    format!("{short} {what} → {id} created, but {}", if hang { "no answer" } else { "answered 500" })
                });
            } else {
                self.note(&who, |_| format!("{short} {what} → {id}"));
            }
            created = Some(i);
        }
        if ambiguous {
            let a = self.activity();
            return if hang {
                Answer { after: After::Hang, ..Answer::json(200, json!({})) }
            } else {
                db_error(500, "INTERNAL_ERROR", &format!("An internal error occurred. ({a})"))
            };
        }
        let body = render(self, created.expect("created"));
        Answer::json(200, body)
    }

    /// A delete, failing before or after its effect now and then.
    fn delete_answer(
        &mut self,
        inv: u32,
        found: Option<usize>,
        id: &str,
        targets: &[String],
        short: &str,
        what: &str,
    ) -> Answer {
        let who = Self::who(inv);
        let f = self.sc.faults.clone();
        // Until its answer says it is gone, the revocation may have failed.
        if let Some(x) = self.invs.get_mut(&inv) {
            x.delete_failed.insert(id.to_string());
        }
        let gone = crate::wire::Delivered::Deleted { id: id.to_string() };
        let failed = self.fault(Service::Workspace, Some(BurstKind::Errors), f.ws_revoke_error);
        let before = failed && self.rng.chance(500);
        if before {
            self.per_mut(inv, targets, |p| p.revokes_ok = false);
            let a = self.activity();
            self.note(&who, |_| format!("{short} {what} {id} → 503 (not revoked)"));
            return db_error(503, "TEMPORARILY_UNAVAILABLE", &format!("The service is temporarily unavailable. ({a})"));
        }
        let Some(i) = found else {
            self.note(&who, |_| format!("{short} {what} {id} → 404 (already gone)"));
            return db_error(404, "RESOURCE_DOES_NOT_EXIST", &format!("Token with id {id} does not exist."))
                .deliver(gone);
        };
        self.kill_by_inv(inv, i);
        if failed {
            let a = self.activity();
            self.note(&who, |_| format!("{short} {what} {id} → revoked, but answered 500"));
            return db_error(500, "INTERNAL_ERROR", &format!("An internal error occurred. ({a})")).deliver(gone);
        }
        Answer::json(200, json!({})).deliver(gone)
    }

    #[allow(clippy::too_many_arguments)]
    fn sp_secrets(
        &mut self,
        inv: u32,
        sent: Duration,
        call: &Call,
        holder: Holder,
        segs: &[String],
        targets: &[String],
        short: &str,
    ) -> Answer {
        let who = Self::who(inv);
        let method = call.method.as_str();
        let live: Vec<usize> =
            (0..self.creds.len()).filter(|i| self.creds[*i].holder == holder && self.live(&self.creds[*i])).collect();
        match (method, segs.len()) {
            ("GET", 7) => {
                let page = self.sc.sp_page;
                let from: usize = call.param("page_token").and_then(|t| t.parse().ok()).unwrap_or(0);
                let end = (from + page).min(live.len());
                let items: Vec<Value> = live[from.min(end)..end]
                    .iter()
                    .map(|i| {
                        let c = &self.creds[*i];
                        json!({
                            "id": c.id, "secret_hash": format!("h{}", c.id),
                            "create_time": c.created.format(&Rfc3339).unwrap_or_default(),
                            "update_time": c.created.format(&Rfc3339).unwrap_or_default(),
                            "expire_time": c.expires.map(|e| e.format(&Rfc3339).unwrap_or_default()),
                            "status": "ACTIVE",
                        })
                    })
                    .collect();
                let ids: Vec<String> = live[from.min(end)..end].iter().map(|i| self.creds[*i].id.clone()).collect();
                self.note(&who, |_| format!("{short} secrets list (from {from}) → [{}]", ids.join(", ")));
                let mut body = json!({"secrets": items});
                if end < live.len() {
                    body["next_page_token"] = json!(end.to_string());
                }
                let req = self.stats.requests;
                Answer::json(200, body).deliver(Delivered::Listing { holder, ids, from, req, dated: true })
            }
            ("POST", 7) => {
                let lifetime = call
                    .json()
                    .and_then(|b| {
                        b["lifetime"].as_str().and_then(|l| l.strip_suffix('s')).and_then(|l| l.parse::<i64>().ok())
                    })
                    .unwrap_or(730 * 86_400);
                if live.len() >= SP_LIMIT {
                    self.note(&who, |_| format!("{short} secrets create → 400 QUOTA_EXCEEDED (5 live)"));
                    return db_error(
                        400,
                        "QUOTA_EXCEEDED",
                        &format!(
                            "Service principal {} already has the maximum number of secrets (5). Delete a secret before creating a new one.",
                            segs[4]
                        ),
                    );
                }
                self.create_answer(
                    inv,
                    sent,
                    holder,
                    None,
                    Duration::seconds(lifetime),
                    short,
                    "secrets create",
                    |w, i| {
                        let c = &w.creds[i];
                        json!({
                            "id": c.id, "secret": c.value, "secret_hash": format!("h{}", c.id),
                            "create_time": c.created.format(&Rfc3339).unwrap_or_default(),
                            "update_time": c.created.format(&Rfc3339).unwrap_or_default(),
                            "expire_time": c.expires.map(|e| e.format(&Rfc3339).unwrap_or_default()),
                            "status": "ACTIVE",
                        })
                    },
                )
            }
            ("DELETE", 8) => {
                let id = segs[7].clone();
                let found = live.iter().copied().find(|i| self.creds[*i].id == id);
                self.delete_answer(inv, found, &id, targets, short, "secrets delete")
            }
            _ => db_error(404, "ENDPOINT_NOT_FOUND", &format!("No API found for '{method} {}'", call.path)),
        }
    }

    /// `POST /oidc/v1/token`: the client-credentials grant with HTTP Basic.
    fn oidc_token(&mut self, inv: u32, call: &Call, short: &str) -> Answer {
        let who = Self::who(inv);
        let f = self.sc.faults.clone();
        let form = call.form();
        let grant = form.iter().find(|(k, _)| k == "grant_type").map(|(_, v)| v.as_str());
        if grant != Some("client_credentials") {
            return Answer::json(
                400,
                json!({"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"}),
            );
        }
        if self.fault(Service::Workspace, Some(BurstKind::Errors), f.ws_verify_error) {
            let a = self.activity();
            self.note(&who, |_| format!("{short} oidc/v1/token → 503"));
            return Answer::json(
                503,
                json!({"error": "temporarily_unavailable", "error_description": format!("try again ({a})")}),
            );
        }
        let Some((app, secret)) = call.basic.clone() else {
            return Answer::json(
                401,
                json!({"error": "invalid_client", "error_description": "Client authentication failed"}),
            );
        };
        let now = self.now();
        let found = self.creds.iter().position(|c| {
            matches!(&c.holder, Holder::OAuth { app: a } if a.eq_ignore_ascii_case(&app)) && c.value == secret
        });
        match found {
            Some(i) if self.live(&self.creds[i]) && now >= self.creds[i].accepted_from => {
                if self.fault(Service::Workspace, None, f.ws_verify_error / 2) {
                    self.note(&who, |w| {
                        format!("{short} oidc/v1/token with {} → 401 quoting the secret", w.creds[i].id)
                    });
                    return Answer::json(
                        401,
                        json!({"error": "invalid_client", "error_description": format!("Client authentication failed for client_secret {secret}")}),
                    );
                }
                self.creds[i].last_used = now;
                let token = crate::world::secret_value(&mut self.rng, "eyJhbGciOiJSUzI1NiJ9.");
                self.leaks.add(&token);
                self.note(&who, |w| format!("{short} oidc/v1/token with {} → 200", w.creds[i].id));
                Answer::json(
                    200,
                    json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "all-apis"}),
                )
            }
            other => {
                let why = match other {
                    Some(i) if self.live(&self.creds[i]) => "not yet propagated",
                    Some(_) => "deleted",
                    None => "unknown",
                };
                self.note(&who, |_| format!("{short} oidc/v1/token → 401 ({why})"));
                Answer::json(
                    401,
                    json!({"error": "invalid_client", "error_description": "Client authentication failed"}),
                )
            }
        }
    }
}
