//! The vault's contents: secrets, their versions, and the soft-deleted ones.
//!
//! Pure data with the service's rules (new version per write, case-insensitive names, soft
//! delete of all versions, name reuse blocked while deleted); nothing here knows about HTTP,
//! authorization or throttling.

use std::collections::{BTreeMap, HashMap};

use crate::encoding::random_hex;

/// One version of a secret, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredVersion {
    /// 32 lowercase hex characters.
    pub version: String,
    /// The secret value.
    pub value: String,
    /// `contentType`.
    pub content_type: Option<String>,
    /// Tags (string to string).
    pub tags: BTreeMap<String, String>,
    /// `attributes.enabled`; a disabled version cannot be read.
    pub enabled: bool,
    /// `attributes.nbf`, Unix seconds.
    pub nbf: Option<i64>,
    /// `attributes.exp`, Unix seconds (informational only, as in Key Vault).
    pub exp: Option<i64>,
    /// `attributes.created`, Unix seconds.
    pub created: i64,
    /// `attributes.updated`, Unix seconds.
    pub updated: i64,
}

/// A secret: its name as first written, and its versions oldest first.
#[derive(Clone, Debug)]
pub(crate) struct Secret {
    pub name: String,
    pub versions: Vec<StoredVersion>,
}

impl Secret {
    pub fn latest(&self) -> &StoredVersion {
        self.versions.last().expect("a stored secret has at least one version")
    }
}

/// A soft-deleted secret.
#[derive(Clone, Debug)]
pub(crate) struct Deleted {
    pub secret: Secret,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

/// What a write carries besides the value.
#[derive(Clone, Debug, Default)]
pub(crate) struct NewVersion {
    pub value: String,
    pub content_type: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
}

/// A PATCH: `None` fields are left unchanged; `tags` replaces the whole map.
#[derive(Clone, Debug, Default)]
pub(crate) struct Patch {
    pub content_type: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub enabled: Option<bool>,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// No such secret or version.
    NotFound,
    /// The name is soft-deleted: it can only be recovered or purged.
    DeletedButRecoverable,
    /// A secret with the name exists, so a deleted one cannot be recovered over it.
    AlreadyExists,
}

/// Retention of soft-deleted secrets (`recoverableDays`).
pub(crate) const RECOVERABLE_DAYS: i64 = 90;

#[derive(Debug, Default)]
pub(crate) struct Store {
    live: HashMap<String, Secret>,
    deleted: HashMap<String, Deleted>,
}

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl Store {
    /// Adds a new version (creating the secret on first write).
    pub fn set(&mut self, name: &str, new: NewVersion, now: i64) -> Result<(String, StoredVersion), StoreError> {
        let k = key(name);
        if self.deleted.contains_key(&k) {
            return Err(StoreError::DeletedButRecoverable);
        }
        let v = StoredVersion {
            version: random_hex(32),
            value: new.value,
            content_type: new.content_type,
            tags: new.tags,
            enabled: new.enabled,
            nbf: new.nbf,
            exp: new.exp,
            created: now,
            updated: now,
        };
        let secret = self.live.entry(k).or_insert_with(|| Secret { name: name.to_string(), versions: Vec::new() });
        secret.versions.push(v.clone());
        Ok((secret.name.clone(), v))
    }

    /// A version (`None` or empty = latest). Returns the stored name too.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<(String, StoredVersion), StoreError> {
        let s = self.live.get(&key(name)).ok_or(StoreError::NotFound)?;
        let v = match version.filter(|v| !v.is_empty()) {
            None => s.latest(),
            Some(ver) => s.versions.iter().find(|v| v.version.eq_ignore_ascii_case(ver)).ok_or(StoreError::NotFound)?,
        };
        Ok((s.name.clone(), v.clone()))
    }

    /// Moves every version's `created`/`updated` (and `exp`) `secs` into the past, as if the
    /// versions had been written that much earlier. False when there is no such secret.
    pub fn age(&mut self, name: &str, secs: i64, latest_only: bool) -> bool {
        let Some(s) = self.live.get_mut(&key(name)) else { return false };
        let skip = if latest_only { s.versions.len().saturating_sub(1) } else { 0 };
        for v in s.versions.iter_mut().skip(skip) {
            v.created -= secs;
            v.updated -= secs;
        }
        true
    }

    /// All versions of a live secret, oldest first (empty when there is none).
    pub fn versions(&self, name: &str) -> Vec<StoredVersion> {
        self.live.get(&key(name)).map(|s| s.versions.clone()).unwrap_or_default()
    }

    /// Every live secret's name and latest version, sorted by name.
    pub fn list(&self) -> Vec<(String, StoredVersion)> {
        let mut v: Vec<_> = self.live.values().map(|s| (s.name.clone(), s.latest().clone())).collect();
        v.sort_by_key(|(n, _)| n.to_ascii_lowercase());
        v
    }

    /// Applies a PATCH to one version (`None`/empty = latest).
    pub fn update(
        &mut self,
        name: &str,
        version: Option<&str>,
        patch: Patch,
        now: i64,
    ) -> Result<(String, StoredVersion), StoreError> {
        let s = self.live.get_mut(&key(name)).ok_or(StoreError::NotFound)?;
        let v = match version.filter(|v| !v.is_empty()) {
            None => s.versions.last_mut().ok_or(StoreError::NotFound)?,
            Some(ver) => {
                s.versions.iter_mut().find(|v| v.version.eq_ignore_ascii_case(ver)).ok_or(StoreError::NotFound)?
            }
        };
        if let Some(ct) = patch.content_type {
            v.content_type = Some(ct);
        }
        if let Some(tags) = patch.tags {
            v.tags = tags;
        }
        if let Some(e) = patch.enabled {
            v.enabled = e;
        }
        if patch.nbf.is_some() {
            v.nbf = patch.nbf;
        }
        if patch.exp.is_some() {
            v.exp = patch.exp;
        }
        v.updated = now;
        Ok((s.name.clone(), v.clone()))
    }

    /// Soft-deletes every version of a secret.
    pub fn delete(&mut self, name: &str, now: i64) -> Result<Deleted, StoreError> {
        let secret = self.live.remove(&key(name)).ok_or(StoreError::NotFound)?;
        let d = Deleted { secret, deleted_date: now, scheduled_purge_date: now + RECOVERABLE_DAYS * 86_400 };
        self.deleted.insert(key(name), d.clone());
        Ok(d)
    }

    pub fn deleted(&self, name: &str) -> Option<Deleted> {
        self.deleted.get(&key(name)).cloned()
    }

    /// Every soft-deleted secret, sorted by name.
    pub fn deleted_list(&self) -> Vec<Deleted> {
        let mut v: Vec<_> = self.deleted.values().cloned().collect();
        v.sort_by_key(|d| d.secret.name.to_ascii_lowercase());
        v
    }

    /// Brings a soft-deleted secret back with all its versions.
    pub fn recover(&mut self, name: &str) -> Result<Secret, StoreError> {
        let k = key(name);
        if self.live.contains_key(&k) {
            return Err(StoreError::AlreadyExists);
        }
        let d = self.deleted.remove(&k).ok_or(StoreError::NotFound)?;
        self.live.insert(k, d.secret.clone());
        Ok(d.secret)
    }

    /// Permanently removes a soft-deleted secret.
    pub fn purge(&mut self, name: &str) -> Result<(), StoreError> {
        self.deleted.remove(&key(name)).map(|_| ()).ok_or(StoreError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(value: &str) -> NewVersion {
        NewVersion { value: value.into(), enabled: true, ..Default::default() }
    }

    #[test]
    fn versions_names_and_soft_delete() {
        let mut s = Store::default();
        let (name, v1) = s.set("Db-Pat", new("a"), 10).unwrap();
        assert_eq!(name, "Db-Pat");
        let (name2, v2) = s.set("db-pat", new("b"), 11).unwrap();
        assert_eq!(name2, "Db-Pat", "names are case-insensitive and keep the first spelling");
        assert_ne!(v1.version, v2.version);
        assert_eq!(s.get("DB-PAT", None).unwrap().1.value, "b");
        assert_eq!(s.get("db-pat", Some(&v1.version.to_uppercase())).unwrap().1.value, "a");
        assert_eq!(s.versions("db-pat").len(), 2);

        s.delete("db-pat", 20).unwrap();
        assert_eq!(s.get("db-pat", None), Err(StoreError::NotFound));
        assert_eq!(s.set("db-pat", new("c"), 21).unwrap_err(), StoreError::DeletedButRecoverable);
        assert_eq!(s.recover("db-pat").unwrap().versions.len(), 2);
        assert_eq!(s.get("db-pat", None).unwrap().1.value, "b");
        s.delete("db-pat", 22).unwrap();
        s.purge("db-pat").unwrap();
        assert!(s.set("db-pat", new("d"), 23).is_ok());
    }

    #[test]
    fn patch_leaves_unspecified_fields() {
        let mut s = Store::default();
        let mut n = new("x");
        n.exp = Some(100);
        n.tags.insert("a".into(), "1".into());
        s.set("n", n, 1).unwrap();
        let (_, v) = s.update("n", None, Patch { enabled: Some(false), ..Default::default() }, 2).unwrap();
        assert!(!v.enabled);
        assert_eq!(v.exp, Some(100));
        assert_eq!(v.tags.get("a").map(String::as_str), Some("1"));
        assert_eq!(v.updated, 2);
    }
}
