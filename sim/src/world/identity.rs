//! The App Service managed-identity endpoint (`IDENTITY_ENDPOINT`, api-version 2019-08-01):
//! `GET ?resource=…&api-version=2019-08-01[&client_id=…]` with `X-IDENTITY-HEADER`, answering
//! `{access_token, expires_on (epoch seconds as a string), resource, token_type, client_id}`.
//!
//! The token is a JWT-shaped string with the identity's `oid` and `tid` (what Key Vault and a
//! reader of `rotated-by` would decode). Its `expires_on` is one day after the machine's real
//! clock: the SDK's token cache compares it with the real clock, so an answer relative to it
//! keeps every schedule's behaviour independent of when it runs (tokens never expire inside a
//! schedule, and the world does not check expiry).

use serde_json::json;

use super::{IDENTITY_HEADER, Issued, OPERATOR_CLIENT_ID, OPERATOR_OID, SERVICE_APPID, SERVICE_OID, TENANT, World};
use crate::scenario::Service;
use crate::wire::{After, Answer, Call};

impl World {
    pub(super) fn identity(&mut self, _process: u32, inv: u32, call: &Call) -> Answer {
        let who = Self::who(inv);
        if call.identity_header.as_deref() != Some(IDENTITY_HEADER) {
            self.note(&who, |_| "identity endpoint → 400 (no or wrong X-IDENTITY-HEADER)".into());
            return Answer::json(400, json!({"statusCode": 400, "message": "Invalid X-IDENTITY-HEADER"}));
        }
        let Some(resource) = call.param("resource").map(str::to_string) else {
            return Answer::json(400, json!({"statusCode": 400, "message": "resource is required"}));
        };
        let rate = self.sc.faults.ws_error / 4;
        if self.fault(Service::Workspace, None, rate) {
            self.note(&who, |_| format!("identity endpoint {resource} → 500"));
            let mut a = Answer::json(500, json!({"statusCode": 500, "message": "An unexpected error occurred"}));
            a.after = After::Answer(self.delay_after());
            return a;
        }
        // The system-assigned identity, or a user-assigned one by `client_id` (App Service's
        // 2019-08-01 protocol): the operator's.
        let (oid, appid) = match call.param("client_id") {
            None => (SERVICE_OID, SERVICE_APPID),
            Some(c) if c.eq_ignore_ascii_case(OPERATOR_CLIENT_ID) => (OPERATOR_OID, OPERATOR_CLIENT_ID),
            Some(_) => {
                self.note(&who, |_| "identity endpoint → 400 (no identity with that client_id)".into());
                return Answer::json(
                    400,
                    json!({"statusCode": 400, "message": "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."}),
                );
            }
        };
        let n = self.issued.len();
        let payload = json!({
            "aud": resource, "iss": format!("https://sts.windows.net/{TENANT}/"), "oid": oid,
            "tid": TENANT, "appid": appid, "uti": format!("u{n}"),
        });
        let sig: Vec<u8> = (0..4).flat_map(|_| self.rng.next_u64().to_le_bytes()).collect();
        let token = format!(
            "{}.{}.{}",
            azure_core::base64::encode_url_safe(br#"{"alg":"RS256","typ":"JWT"}"#),
            azure_core::base64::encode_url_safe(payload.to_string()),
            azure_core::base64::encode_url_safe(sig)
        );
        self.leaks.add(&token);
        self.issued.insert(token.clone(), Issued { identity: oid.to_string(), audience: resource.clone() });
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() + 86_400)
            .unwrap_or(u64::MAX / 2);
        self.note(&who, |_| format!("identity endpoint {resource} → a token"));
        let mut a = Answer::json(
            200,
            json!({
                "access_token": token, "expires_on": expires.to_string(), "resource": resource,
                "token_type": "Bearer", "client_id": appid,
            }),
        );
        a.after = After::Answer(self.delay_after());
        a
    }
}
