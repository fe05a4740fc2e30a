//! The read-only overview served at `GET /_emulator/state` on the identity server.
//!
//! It lets a demo script show what a rotation did — live tokens per workspace, secret
//! versions per vault — without ever exposing a value: no PATs, no secret values, no bearer
//! tokens.

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::directory::unix_millis;
use crate::keyvault::FakeKeyVault;
use crate::workspace::FakeWorkspace;

/// The overview document.
pub(crate) fn snapshot(identity_principal: &str, workspaces: &[FakeWorkspace], vaults: &[FakeKeyVault]) -> Value {
    json!({
        "generated_at": unix_millis(SystemTime::now()),
        "identity": {"principal": identity_principal},
        "workspaces": workspaces.iter().map(FakeWorkspace::snapshot).collect::<Vec<_>>(),
        "vaults": vaults.iter().map(FakeKeyVault::snapshot).collect::<Vec<_>>(),
    })
}
