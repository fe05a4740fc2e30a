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

/// The calling identity's PATs in one workspace (Token API).
#[async_trait]
pub trait Workspace: Send + Sync {
    /// The identity's live tokens. Retries transient failures.
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>>;
    /// Creates a token. Not retried blindly: see [`CreateError`].
    async fn create_token(&self, req: &CreateToken) -> std::result::Result<NewToken, CreateError>;
    /// Revokes a token; a token that is already gone counts as revoked.
    async fn delete_token(&self, token_id: &str) -> Result<()>;
    /// Proves that `token` authenticates to the workspace (and counts as a use of it).
    async fn verify_token(&self, token: &Redacted) -> Result<()>;
    /// The workspace's `maxTokenLifetimeDays`, when it can be read (0 = no limit).
    async fn max_lifetime_days(&self) -> Option<u32>;
}

/// One vault's secrets.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The latest version of `name`, or `None` when there is no such secret.
    async fn read_latest(&self, name: &str) -> Result<Option<StoredSecret>>;
    /// Writes a new version and returns it.
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
