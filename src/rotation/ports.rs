//! What the rotation needs from the world, as five small traits.
//!
//! - [`Issuer`]: whoever mints the credential — a workspace's Token API for PATs, a service
//!   principal's OAuth secrets — with its own [`Profile`] and its own
//!   reading of which listed credentials are the target's.
//! - [`SecretStore`]: one vault.
//! - [`OtherSecrets`]: the other configured secrets whose latest versions may name one of this
//!   issuer's credentials (contract §7.4(a)), read once per pass and shared.
//! - [`Clock`]: the wall clock and fresh ids (a simulation replaces both).
//! - [`Backoff`]: the one retry policy and the invocation's deadline, for the one retry the
//!   domain decides itself (a secret write, after reading back).
//!
//! Implementations own their transport concerns — retries of idempotent calls, `Retry-After`,
//! timeouts, pacing — and hand the domain plain results with the stable error codes. Nothing
//! here knows HTTP.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use time::{Date, OffsetDateTime};

use super::model::{CreateRequest, Credential, NewCredential, Profile, SecretWrite, StoredSecret};
use crate::error::{Error, Result};
use crate::secret::Redacted;

/// How an issuer refused a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No room: the identity's token quota, or the principal's limit of OAuth secrets.
    Full,
    /// The requested lifetime is above the issuer's cap (the message names the cap when it
    /// could be read).
    LifetimeAboveCap,
    /// Anything else (permissions, bad request, …).
    Other,
}

/// Why a create failed, as far as the caller can know.
#[derive(Debug)]
pub enum CreateError {
    /// The issuer refused: nothing was created.
    Refused(Refusal, Error),
    /// The request may have reached the issuer (timeout, lost connection, 5xx): a credential
    /// may exist whose value is lost.
    Ambiguous(Error),
}

/// The credentials an issuer holds that may be the target's, and the issuer's clock when it
/// listed them (its `Date` header; `None` when it sent none — then no age is provable).
#[derive(Debug, Clone)]
pub struct Listing {
    pub credentials: Vec<Credential>,
    pub at: Option<OffsetDateTime>,
}

/// Mints, lists, proves and revokes one target's kind of credential.
#[async_trait]
pub trait Issuer: Send + Sync {
    /// What this kind of credential looks like in the vault.
    fn profile(&self) -> &'static Profile;
    /// Every credential that may be the target's, each with its [`Ownership`](super::model::Ownership)
    /// as far as the listing tells. Retries transient failures.
    async fn list(&self) -> Result<Listing>;
    /// Creates a credential. Not retried blindly: see [`CreateError`].
    async fn create(&self, req: &CreateRequest) -> std::result::Result<NewCredential, CreateError>;
    /// Proves that `value` authenticates (which counts as a use of it). Returns the issuer's
    /// clock at that moment, when it said.
    async fn verify(&self, value: &Redacted) -> Result<Option<OffsetDateTime>>;
    /// Revokes a credential; one that is already gone counts as revoked.
    async fn revoke(&self, id: &str) -> Result<()>;
    /// When the credential was last used, as far as the issuer records it (contract §10
    /// "Usage"). Kinds without such a record answer [`Usage::Untracked`]. No default: a wrapper
    /// that forgot to pass it on would silently turn `keep_while_used` off.
    async fn usage(&self, id: &str) -> Usage;
}

/// What an issuer says about a credential's last use (contract §10 "Usage").
#[derive(Debug, Clone)]
pub enum Usage {
    /// This kind of credential has no record of use (a service principal's OAuth secret).
    Untracked,
    /// The identity may not read usage (a `403`: it is no workspace admin). `scope` names what
    /// it may not read (the workspace and whose tokens), for one warning per pass.
    Forbidden { scope: String, error: Error },
    /// The issuer holds no such live credential (revoked, or expired).
    Gone,
    /// The lookup failed otherwise.
    Failed(Error),
    /// The issuer's answer: the UTC day of the last use (`None` when the answer had none) and
    /// the issuer's clock when it answered (its `Date`; `None` when it sent none).
    Read { last_used_day: Option<Date>, at: Option<OffsetDateTime> },
}

/// The latest version of a secret and Key Vault's clock when it answered (its `Date` header).
/// Grace periods are measured on that clock.
#[derive(Debug, Clone)]
pub struct SecretRead {
    /// `None`: the vault answered that there is no such secret — which proves nothing about
    /// what consumers hold (a soft-deleted secret, or one being recovered, reads the same).
    ///
    /// When the latest version had to be found from the versions list (the vault refuses to
    /// read a disabled one) and several versions share the newest `created` second (Key Vault's
    /// `created` has whole seconds), this is the one with the greatest id and [`Self::tied`]
    /// holds the others: any of them may be the one written last, so each counts as the latest
    /// (contract §7.4).
    pub latest: Option<StoredSecret>,
    /// The other versions of `latest`'s `created` second, when the latest was found from the
    /// versions list; empty otherwise.
    pub tied: Vec<StoredSecret>,
    pub at: Option<OffsetDateTime>,
}

impl SecretRead {
    /// `latest` and every version tied with it.
    pub fn latest_versions(&self) -> impl Iterator<Item = &StoredSecret> {
        self.latest.iter().chain(self.tied.iter())
    }
}

/// How a write failed.
#[derive(Debug)]
pub enum WriteError {
    /// The vault refused the write (a 4xx other than 408): the version was not stored. A
    /// transient refusal (throttled) may be tried again after reading back.
    Failed(Error),
    /// The outcome is unknown: no answer (timeout, connection lost after sending), or a 408 or
    /// 5xx answer, which a gateway or front end may give for a write that is applied later
    /// (contract §7.3). The version may still be stored, now or later.
    Unknown(Error),
}

impl WriteError {
    pub fn error(&self) -> &Error {
        match self {
            WriteError::Failed(e) | WriteError::Unknown(e) => e,
        }
    }
}

/// One vault's secrets.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The latest version of `name`, enabled or not. Retries transient failures.
    async fn read_latest(&self, name: &str) -> Result<SecretRead>;
    /// Every version of `name` (metadata only). Retries transient failures.
    async fn versions(&self, name: &str) -> Result<Vec<StoredSecret>>;
    /// Writes a new version and returns it. One attempt: whether to try again is the caller's
    /// decision, made after reading back.
    async fn write(&self, secret: &SecretWrite) -> std::result::Result<StoredSecret, WriteError>;
    /// An error of this store, with its stable code, for a state of the secret the rotation
    /// cannot accept (say, a version written by someone else in the middle of a run).
    fn error(&self, message: String) -> Error;
    /// The identity this store reads and writes as: the lower-case object id that a new
    /// version's `rotated-by` tag records (contract §10). `None` when it cannot be read (the
    /// tag then says `unknown`). The default is a store that cannot tell.
    async fn writer(&self) -> Option<String> {
        None
    }
}

/// What the latest versions of the other configured secrets name (contract §7.4(a)), for the
/// credentials of one issuer: a `pat` target on the same workspace host, an `sp_oauth_secret`
/// target with the same service principal. An operator may have copied a version between
/// secrets or vaults, so a credential of this target may be what another secret's consumers
/// read.
#[derive(Debug, Clone, Default)]
pub struct Protection {
    /// Each credential id some latest version names (under either kind's tag, whether or not
    /// the version carries `managed-by`), with a description of the secret that names it.
    pub named: BTreeMap<String, String>,
    /// The secrets whose read failed or said "absent", each with why: while one is unread,
    /// nothing it might name can be ruled out, so nothing may be revoked.
    pub unread: Vec<String>,
}

/// The other configured secrets that may name this issuer's credentials.
#[async_trait]
pub trait OtherSecrets: Send + Sync {
    /// What their latest versions name. Called before every revocation: an implementation
    /// reads each secret once and shares the read (across a pass), and reads again when the
    /// read it holds is more than [`PROTECTION_FRESH_FOR`] old.
    async fn latest(&self) -> Protection;
    /// Every credential any of their versions records (current or previous): a credential
    /// another target records is that target's, never reported as this target's unrecorded
    /// one (contract §9). Read only when a credential is left unattributed; the error when a
    /// read failed.
    async fn recorded(&self) -> Result<BTreeSet<String>>;
}

/// How long a read of another secret protects a revocation (contract §7.4(a)).
pub const PROTECTION_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// No other configured secret can name this issuer's credentials (a target alone on its
/// workspace or principal).
pub struct NoOtherSecrets;

#[async_trait]
impl OtherSecrets for NoOtherSecrets {
    async fn latest(&self) -> Protection {
        Protection::default()
    }
    async fn recorded(&self) -> Result<BTreeSet<String>> {
        Ok(BTreeSet::new())
    }
}

/// The local clock: used only to write `rotated-at` and, with tokio's monotonic clock, to
/// measure how long a new credential waited for its write — never to judge an age or a grace.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
    /// A fresh id for a create attempt.
    fn unique_id(&self) -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The retry policy, as far as the domain needs it.
pub trait Backoff: Send + Sync {
    /// How long to wait before attempt `attempt + 1` after `err`; `None`: stop trying.
    fn next_wait(&self, attempt: u32, err: &Error) -> Option<std::time::Duration>;
    /// The invocation's time budget is spent.
    fn past_deadline(&self) -> bool;
}
