//! ansible-rulebook's webhook source: one route, `POST /{endpoint:.*}`, behind the token
//! and HMAC middlewares (which run before the router's 405, as aiohttp middlewares do).

use axum::http::{HeaderMap, Method};
use serde_json::Value;

use super::auth;
use super::event;
use super::ledger::Flavor;
use super::responses;
use super::server::{Taken, Verdict};
use super::state::Shared;

pub(crate) fn receive(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Verdict {
    let endpoint = path.trim_start_matches('/');
    let (token, hmac, playbook) = {
        let state = shared.lock();
        (
            state.token.clone(),
            state.hmac_secret.clone().map(|s| (s, state.hmac_format)),
            state.webhooks.get(endpoint).copied(),
        )
    };
    let hmac = hmac
        .as_ref()
        .map(|(secret, format)| (secret.as_str(), *format));
    let auth = match auth::webhook(token.as_deref(), hmac, headers, body) {
        Ok(check) => check,
        Err(refusal) => {
            return Verdict::refused(
                responses::text(refusal.status, &refusal.message),
                refusal.check,
            );
        }
    };
    if method != Method::POST {
        let response = responses::text(405, "405: Method Not Allowed");
        return Verdict::refused(responses::allow(response, "POST"), auth);
    }
    let Ok(payload) = serde_json::from_slice::<Value>(body) else {
        return Verdict::refused(responses::text(400, "Invalid JSON payload"), auth);
    };
    Verdict::Taken(Taken {
        flavor: Flavor::Webhook,
        event: event::webhook(endpoint, headers, payload),
        route: endpoint.to_owned(),
        playbook,
        auth,
        // The source answers with the endpoint as text.
        ok: responses::text(200, endpoint),
    })
}
