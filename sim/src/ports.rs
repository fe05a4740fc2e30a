//! The four ports of `pat_rotator::rotation::ports`, over the simulated world.
//!
//! Every call awaits a seeded delay, makes its one effect in the world (where its fault is
//! drawn, the log written and the invariants checked), awaits another delay and answers. The
//! delays are what interleave concurrent runs: the seed decides which run's effect comes first.
//! A run killed during the second delay has made its effect but never sees the answer.

use async_trait::async_trait;
use pat_rotator::error::{Error, Result};
use pat_rotator::rotation::model::{CreateRequest, NewCredential, Profile, SecretWrite, StoredSecret};
use pat_rotator::rotation::ports::{
    Backoff, Clock, CreateError, Issuer, Listing, SecretRead, SecretStore, Usage, WriteError,
};
use pat_rotator::secret::Redacted;
use time::OffsetDateTime;

use crate::world::{Shared, lock};

/// Awaits this run's next seeded delay.
async fn pause(w: &Shared, run: u32) {
    let d = lock(w).delay(run);
    tokio::time::sleep(d).await;
}

/// The issuer of one run's target: the identity's tokens in the workspace, or the principal's
/// OAuth secrets (the world knows which).
pub struct SimIssuer {
    pub w: Shared,
    pub run: u32,
    pub profile: &'static Profile,
}

#[async_trait]
impl Issuer for SimIssuer {
    fn profile(&self) -> &'static Profile {
        self.profile
    }
    async fn list(&self) -> Result<Listing> {
        pause(&self.w, self.run).await;
        let r = lock(&self.w).is_list(self.run);
        pause(&self.w, self.run).await;
        r
    }
    async fn create(&self, req: &CreateRequest) -> std::result::Result<NewCredential, CreateError> {
        pause(&self.w, self.run).await;
        let r = lock(&self.w).is_create(self.run, req);
        pause(&self.w, self.run).await;
        r
    }
    async fn verify(&self, value: &Redacted) -> Result<Option<OffsetDateTime>> {
        pause(&self.w, self.run).await;
        let r = lock(&self.w).is_verify(self.run, value);
        pause(&self.w, self.run).await;
        r
    }
    async fn revoke(&self, id: &str) -> Result<()> {
        pause(&self.w, self.run).await;
        let r = lock(&self.w).is_revoke(self.run, id);
        pause(&self.w, self.run).await;
        r
    }

    /// The simulator's issuers keep no record of use (its targets run without keep_while_used).
    async fn usage(&self, _id: &str) -> Usage {
        Usage::Untracked
    }
}

/// One vault, as one run reaches it.
pub struct SimStore {
    pub w: Shared,
    pub run: u32,
    pub vault: String,
}

#[async_trait]
impl SecretStore for SimStore {
    fn error(&self, message: String) -> Error {
        Error::new(pat_rotator::error::Code::KeyvaultError, message)
    }

    async fn read_latest(&self, name: &str) -> Result<SecretRead> {
        pause(&self.w, self.run).await;
        let r = lock(&self.w).kv_read(self.run, &self.vault, name);
        pause(&self.w, self.run).await;
        r
    }
    async fn versions(&self, name: &str) -> Result<Vec<StoredSecret>> {
        pause(&self.w, self.run).await;
        let r = lock(&self.w).kv_versions(self.run, &self.vault, name);
        pause(&self.w, self.run).await;
        r
    }
    async fn write(&self, secret: &SecretWrite) -> std::result::Result<StoredSecret, WriteError> {
        pause(&self.w, self.run).await;
        let (r, landing) = lock(&self.w).kv_write(self.run, &self.vault, secret);
        if let Some(l) = landing {
            // The write's effect, on its own: it lands whether or not this run still lives.
            let w = self.w.clone();
            tokio::task::spawn_local(async move {
                tokio::time::sleep(l.after).await;
                lock(&w).land(l);
            });
        }
        pause(&self.w, self.run).await;
        r
    }
}

/// The rotation's local clock (skewed, maybe jumping) and its attempt ids (a counter).
pub struct SimClock {
    pub w: Shared,
}

impl Clock for SimClock {
    fn now(&self) -> OffsetDateTime {
        lock(&self.w).local_now()
    }
    fn unique_id(&self) -> String {
        lock(&self.w).unique_id()
    }
}

/// The one retry the core decides itself (a secret write), and the run's deadline.
pub struct SimBackoff {
    pub w: Shared,
    pub run: u32,
    pub attempts: u32,
}

impl Backoff for SimBackoff {
    fn next_wait(&self, attempt: u32, err: &Error) -> Option<std::time::Duration> {
        (attempt < self.attempts)
            .then(|| err.retry_after.unwrap_or(std::time::Duration::from_millis(500 << attempt.min(6))))
    }
    fn past_deadline(&self) -> bool {
        let w = lock(&self.w);
        w.now() >= w.runs[&self.run].deadline
    }
}
