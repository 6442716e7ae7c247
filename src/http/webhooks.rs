//! `POST /webhooks/<source>` of every source of `sources::REGISTRY`:
//! authenticate (before the body is parsed), parse with the source's adapter,
//! write through the one write path, count what happened.

use super::json::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{MethodRouter, post};
use serde_json::{Value, json};

use super::AppState;
use super::body::{discard, form_field, is_json, media_type, parse_json, require_json};
use super::error::AppError;
use super::write::{count_refusal, read_body_until, record};
use crate::config::Config;
use crate::ingest::FieldError;
use crate::model::time::now_ms;
use crate::sources::signature::AuthError;
use crate::sources::webhook::{AdapterError, FollowUp, Parsed};
use crate::sources::{REGISTRY, Source, sentry};

/// `POST /webhooks/<name>` of each registered source; `None` for a path
/// that names none.
pub fn route(path: &str) -> Option<MethodRouter<AppState>> {
    let source = Source::by_name(path.strip_prefix("/webhooks/")?)?;
    Some(post(
        move |State(state): State<AppState>, headers: HeaderMap, body: Body| {
            handle(state, source, headers, body)
        },
    ))
}

/// Says at start which sources accept events (never the secrets themselves).
pub fn log_configuration(config: &Config) {
    for hook in REGISTRY {
        let (secrets, var) = (hook.vendor().secrets)(config);
        let source = hook.as_str();
        if secrets == 0 {
            tracing::info!(
                source,
                "webhook refuses events (503): no secret configured ({var})"
            );
        } else {
            tracing::info!(source, secrets, "webhook accepts signed events");
        }
    }
    if config.webhooks.sentry.api_token.is_none() {
        tracing::info!(
            "no Sentry API token: Sentry issues are attributed from `error` webhooks only"
        );
    }
}

fn auth_error(e: AuthError) -> AppError {
    AppError::WebhookAuth(match e {
        AuthError::Missing("X-Hub-Signature-256") => "missing X-Hub-Signature-256 header",
        AuthError::Missing("X-Hub-Signature") => "missing X-Hub-Signature header",
        AuthError::Missing("Sentry-Hook-Signature") => "missing Sentry-Hook-Signature header",
        AuthError::Missing("X-Gitlab-Token") => "missing X-Gitlab-Token header",
        AuthError::Missing("webhook-signature") => {
            "missing webhook-signature header (only signed GitLab webhooks are configured)"
        }
        AuthError::Missing("webhook-id") => "missing webhook-id header",
        AuthError::Missing("webhook-timestamp") => "missing webhook-timestamp header",
        AuthError::Missing(_) => "missing signature header",
        AuthError::Wrong("X-Gitlab-Token") => "X-Gitlab-Token matches no configured token",
        AuthError::Wrong("webhook-timestamp") => {
            "webhook-timestamp is not Unix seconds within 5 minutes of now"
        }
        AuthError::Wrong("webhook-signature") => {
            "webhook-signature has no v1 signature matching a configured signing secret"
        }
        AuthError::Wrong(_) => "the signature matches no configured secret",
    })
}

impl From<AdapterError> for AppError {
    fn from(e: AdapterError) -> Self {
        match e {
            AdapterError::Header(m) => AppError::Malformed(m),
            AdapterError::Field(f) => AppError::InvalidField(f),
        }
    }
}

async fn handle(
    state: AppState,
    hook: Source,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, AppError> {
    let result = process(&state, hook, headers, body).await;
    count_refusal(&state, hook.ingress(), result).map(Json)
}

async fn process(
    state: &AppState,
    hook: Source,
    headers: HeaderMap,
    body: Body,
) -> Result<Value, AppError> {
    let config = &*state.config;
    let ingress = hook.ingress();
    let (secrets, var) = (hook.vendor().secrets)(config);
    if secrets == 0 {
        return Err(AppError::NotConfigured(format!(
            "no {} secret is configured (set {var} or webhooks.{}); events are refused rather than accepted unsigned",
            ingress.as_str(),
            ingress.as_str()
        )));
    }
    // A token needs no body: refuse before reading it.
    (hook.vendor().authenticate)(config, &headers, None).map_err(auth_error)?;
    let limit = config.max_body_bytes;
    let deadline = std::time::Instant::now() + config.write_timeout;
    // Bytes not yet authenticated take room in their own budget, never in the
    // write queue: unsigned junk cannot crowd out signed deliveries there.
    let unverified = match state.unauthenticated.admit(&headers, limit).await {
        Ok(u) => u,
        Err(e) => {
            discard(body, limit).await;
            return Err(e);
        }
    };
    let now = now_ms();
    // The body and its JSON tree are dropped before the wait for the writer.
    let (admitted, parsed) = {
        let bytes =
            read_body_until(deadline, &headers, body, limit, config.body_read_timeout).await?;
        (hook.vendor().authenticate)(config, &headers, Some(&bytes)).map_err(auth_error)?;
        // Signed: the bytes move to the write queue (always counted in one
        // bound or the other), then the unauthenticated room is freed.
        let admitted = state.write_queue.admit_until(bytes.len(), deadline).await?;
        drop(unverified);
        let mut value = if hook.vendor().form_payload {
            json_or_form(&headers, &bytes)?
        } else {
            require_json(&headers)?;
            parse_json(&bytes)?
        };
        drop(bytes);
        (hook.vendor().complete)(config, &state.telemetry, &mut value).await;
        let parsed = (hook.vendor().parse)(&headers, &value, config, now)?;
        (admitted, parsed)
    };
    state.telemetry.received(ingress, 1);
    let Parsed {
        mut items,
        delivery,
        ignored,
        unmapped,
        follow_up,
    } = parsed;
    if let Some(reason) = ignored {
        state.telemetry.ignored(ingress, reason, 1);
        return Ok(json!({ "ignored": reason }));
    }
    if let Some(FollowUp::SentryFirstRelease { issue_id, product }) = follow_up {
        if let Some(release) =
            sentry::api::first_release(&state.config, &state.telemetry, &issue_id).await
        {
            items.push(sentry::webhook::attach_release(issue_id, product, release));
        }
    }
    let outcome = record(state, admitted, ingress, items, delivery, now).await?;
    if !outcome.duplicate_delivery {
        state
            .telemetry
            .ignored(ingress, "not_a_defect", outcome.ignored);
        for field in unmapped {
            state.telemetry.unmapped(ingress, field);
        }
    }
    Ok(serde_json::to_value(outcome).unwrap_or(Value::Null))
}

/// The JSON of a delivery that may come form-encoded (GitHub): the body
/// itself, or the `payload` field of a form-encoded body (signed as sent, so
/// decoded only after the signature is checked).
fn json_or_form(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, AppError> {
    let media = media_type(headers);
    if is_json(&media) {
        return parse_json(bytes);
    }
    if media != "application/x-www-form-urlencoded" {
        let what = if media.is_empty() {
            "Content-Type is missing".to_owned()
        } else {
            format!("`{media}` is neither JSON nor a form")
        };
        return Err(AppError::UnsupportedMediaType(format!(
            "{what}; send application/json (recommended) or application/x-www-form-urlencoded"
        )));
    }
    let payload = form_field(bytes, "payload")?;
    serde_json::from_str(&payload).map_err(|e| {
        AppError::MalformedField(FieldError::new(
            "payload",
            format!("is not valid JSON: {e}"),
        ))
    })
}
