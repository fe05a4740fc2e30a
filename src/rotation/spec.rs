//! What one rotation is asked to keep: the rotation's own view of a configured target, built by
//! the engine from the configuration, so that this module never reads configuration itself.

use std::collections::BTreeMap;

use time::Duration;

/// One target, as the rotation needs it.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The target's name (tag `target`, messages).
    pub target: String,
    pub secret_name: String,
    pub lifetime_days: u32,
    pub renew_before: Duration,
    /// `revoke_grace_hours`.
    pub grace: Duration,
    /// Tags every version of this target carries besides those the rotation derives
    /// (`databricks-host`, and `databricks-client-id` when there is one).
    pub tags: BTreeMap<String, String>,
    /// Who owns the target's credentials, for the "owner changed" explanation of a vanished
    /// credential (contract §8); `None` when a change of owner cannot explain it.
    pub owner: Option<Owner>,
    /// `keep_while_used` (contract §10 "Usage"): a superseded credential still in use is kept
    /// past its grace, at most `renew_before` after it was superseded.
    pub keep_while_used: bool,
}

/// The owner of a target's credentials, as its versions record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The value of [`Owner::tag`] it writes (`None`: the service's own identity, which writes
    /// no such tag).
    pub client_id: Option<String>,
    /// The tag that records the owner.
    pub tag: &'static str,
}

impl Owner {
    pub fn describe(client_id: &Option<String>) -> String {
        match client_id {
            Some(c) => format!("app {c}"),
            None => "the service identity".to_string(),
        }
    }
}

/// How `force` was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    No,
    /// The CLI: always honoured (and may push a target to its cap).
    Cli,
    /// ProvisionPat: declined inside the cooldown, or when the target is one below its cap
    /// (contract §3).
    Provision {
        cooldown: Duration,
    },
}

/// What a run does when the latest managed version was written by another identity than the
/// one this run writes as (its `rotated-by` tag, contract §10). The run writes `rotated-by` (the
/// store's [`writer`](super::ports::SecretStore::writer)) and `rotated-via` on every version.
///
/// A version without `rotated-by` (written before the tag existed) is never another identity's;
/// `unknown`, or any tag while this run's own identity cannot be read, is. Whatever the policy,
/// `--revoke-superseded` refuses over another identity's version: that identity's credentials
/// are not in this identity's list, so they could not be revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherWriter {
    /// The deployment (RotatePat, ProvisionPat): writes as itself, whoever wrote before.
    Overwrite,
    /// The CLI: the target fails with `rotated_by_another_identity` before anything is created
    /// (a dry run reports the same).
    Refuse,
    /// The CLI with `--take-ownership`: writes anyway, with a warning.
    TakeOwnership,
    /// A run started by a Key Vault event: warns and leaves the target as it is (two writers
    /// would otherwise answer each other's events); the outcome is `unchanged`.
    Leave,
}

/// What one run was asked to do for one target.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub force: Force,
    pub dry_run: bool,
    /// Incident response (CLI only): once the new version is written, every other credential
    /// of the target is revoked at once, grace or not.
    pub revoke_superseded: bool,
    /// What to do over a version another identity wrote.
    pub other_writer: OtherWriter,
    /// The `rotated-via` tag of a version this run writes: who started it (`RotatePat`,
    /// `ProvisionPat`, `SecretEvent`, `cli`).
    pub via: &'static str,
    /// A run started by a Key Vault near-expiry or expired event (contract §10): rotate when
    /// the latest version's `exp` is within this, whatever `renew_before` says.
    pub expiry_window: Option<Duration>,
}
