//! What the rotation needs from the world, as four small traits.
//!
//! - [`Issuer`]: whoever mints the credential — a workspace's Token API for PATs, a service
//!   principal's OAuth secrets — with its own [`Profile`] and its own
//!   reading of which listed credentials are the target's.
//! - [`SecretStore`]: one vault.
//! - [`Clock`]: the wall clock and fresh ids (a simulation replaces both).
//! - [`Backoff`]: the one retry policy and the invocation's deadline, for the one retry the
//!   domain decides itself (a secret write, after reading back).
//!
//! Implementations own their transport concerns — retries of idempotent calls, `Retry-After`,
//! timeouts, pacing — and hand the domain plain results with the stable error codes. Nothing
//! here knows HTTP.

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
    /// "Usage"). Kinds without such a record answer [`Usage::Untracked`].
    async fn usage(&self, _id: &str) -> Usage {
        Usage::Untracked
    }
}

/// What an issuer says about a credential's last use (contract §10 "Usage").
#[derive(Debug, Clone)]
pub enum Usage {
    /// This kind of credential has no record of use (a service principal's OAuth secret).
    Untracked,
    /// The identity may not read usage (a `403`: it is no workspace admin). `scope` names what
    /// it may not read (the workspace and whose tokens), for one warning per pass.
    Forbidden { scope: String, error: Error },
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
    pub latest: Option<StoredSecret>,
    pub at: Option<OffsetDateTime>,
}

/// How a write failed.
#[derive(Debug)]
pub enum WriteError {
    /// The vault answered with an error. A 4xx means the version was not stored; a transient
    /// one (a 5xx) may have been answered after it was, so the rotation checks the versions.
    Failed(Error),
    /// No answer (timeout, connection lost after sending): the version may still be stored,
    /// now or later.
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
