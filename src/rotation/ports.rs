//! What the rotation needs from the world, as three small traits.
//!
//! Implementations own their transport concerns — retries of idempotent calls, `Retry-After`,
//! timeouts, pacing — and hand the domain plain results with the stable error codes.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::model::{CreateToken, NewToken, SecretWrite, StoredSecret, TokenInfo};
use crate::error::{Error, Result};
use crate::secret::Redacted;

/// Why a token create failed, as far as the caller can know.
#[derive(Debug)]
pub enum CreateError {
    /// The workspace refused: no token was created.
    Refused(Error),
    /// The request may have reached the workspace (timeout, lost connection, 5xx): a token
    /// with this attempt's comment may exist.
    Ambiguous(Error),
}

/// The identity's live tokens, and the workspace's clock when it listed them (its `Date`
/// header; `None` when it sent none). Ages of tokens are measured on that clock, never ours.
#[derive(Debug, Clone)]
pub struct Listing {
    pub tokens: Vec<TokenInfo>,
    pub at: Option<OffsetDateTime>,
}

/// The latest version of a secret (`None`: there is no such secret), and Key Vault's clock
/// when it answered (its `Date` header). Grace periods are measured on that clock.
#[derive(Debug, Clone)]
pub struct SecretRead {
    pub latest: Option<StoredSecret>,
    pub at: Option<OffsetDateTime>,
}

/// The calling identity's PATs in one workspace (Token API).
#[async_trait]
pub trait Workspace: Send + Sync {
    /// The identity's live tokens. Retries transient failures.
    async fn list_tokens(&self) -> Result<Listing>;
    /// Creates a token. Not retried blindly: see [`CreateError`].
    async fn create_token(&self, req: &CreateToken) -> std::result::Result<NewToken, CreateError>;
    /// Revokes a token; a token that is already gone counts as revoked.
    async fn delete_token(&self, token_id: &str) -> Result<()>;
    /// Proves that `token` authenticates to the workspace (and counts as a use of it). Returns
    /// the workspace's clock at that moment, when it said.
    async fn verify_token(&self, token: &Redacted) -> Result<Option<OffsetDateTime>>;
    /// The workspace's `maxTokenLifetimeDays`, when it can be read (0 = no limit).
    async fn max_lifetime_days(&self) -> Option<u32>;
}

/// One vault's secrets.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The latest version of `name`. Retries transient failures.
    async fn read_latest(&self, name: &str) -> Result<SecretRead>;
    /// Writes a new version and returns it. One attempt: a failed write may still have
    /// landed, so whether to try again is the caller's decision, made after reading back.
    async fn write(&self, secret: &SecretWrite) -> Result<StoredSecret>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
