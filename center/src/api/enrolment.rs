//! Enrolment over HTTP: an administrator creates a box's one-time token; the box redeems it
//! (`xl-agent enroll`), which registers its key (and broker password) and hands it what it needs
//! to deliver. The token is the box's only credential here, so this one route needs no session.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::enrolment::key_fingerprint;
pub use xueliang_proto::enrolment::{EnrollRequest, Enrolled};
use xueliang_proto::signing::VerifyingKey;
use xueliang_proto::topics::is_valid_agent_id;

use super::caller::Caller;
use super::paging::at_most;
use super::{ApiError, ApiState, blocking};
use crate::access::Permission;
use crate::fleet::{Enrolment, PasswordHash, RedeemError};
use crate::ingest::BrokerAccounts;

/// The longest token taken as typed: 20 characters in groups, with room for spaces.
const MAX_TOKEN_CHARS: usize = 128;
/// The longest host name a box reports (POSIX's `HOST_NAME_MAX` is at least 255).
const MAX_HOSTNAME_CHARS: usize = 255;

/// Body of `POST /api/enrolments`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentRequest {
    /// The agent id the box will have (one MQTT topic level, e.g. `village-7`).
    pub agent_id: String,
    /// Hours the token stays valid (default 24, at most 720).
    #[serde(default)]
    pub valid_hours: Option<f64>,
}

/// Answer to `POST /api/enrolments`: the token, shown this once.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnrolmentCreated {
    /// Give it to the installer; it works once.
    pub token: String,
    /// The agent id.
    pub agent_id: String,
    /// When it stops working, UTC ms.
    pub expires_ms: i64,
    /// The command to run on the box.
    pub command: String,
}

/// What the center tells enrolling boxes about its broker.
#[derive(Debug, Clone)]
pub struct EnrolSettings {
    /// The broker URL as agents reach it, when set explicitly (`--agent-mqtt-url`).
    pub mqtt_url: Option<String>,
    /// Otherwise: the embedded broker's agent port and scheme, joined to the host name the box
    /// used to reach this API.
    pub embedded: Option<(u16, bool)>,
    /// The embedded broker checks passwords: make one per box.
    pub passwords: bool,
    /// The external broker's accounts, kept by the center: make one per box there.
    pub accounts: Option<Arc<BrokerAccounts>>,
    /// The center's public key.
    pub center_key: String,
}

/// A JSON body refused: too big (413) or not JSON by its type (415) says so, anything else is a
/// 400 saying what to `send`.
fn refused_body(e: JsonRejection, send: &str) -> ApiError {
    let status = match e.status() {
        s @ (StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE) => s,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, format!("{}; send {send}", e.body_text()))
}

/// `POST /api/enrolments` (admin).
pub(super) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<EnrolmentRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<EnrolmentCreated>), ApiError> {
    caller.require(Permission::Administer)?;
    let Json(req) =
        body.map_err(|e| refused_body(e, "{\"agent_id\": ..., \"valid_hours\": 24}"))?;
    if !is_valid_agent_id(&req.agent_id) {
        return Err(ApiError::bad_request(format!(
            "agent_id {:?} must be 1-64 letters, digits, '-' or '_'",
            req.agent_id
        )));
    }
    let hours = req.valid_hours.unwrap_or(24.0);
    if !(hours > 0.0 && hours <= 720.0) {
        return Err(ApiError::bad_request(
            "valid_hours must be more than 0 and at most 720 (30 days)",
        ));
    }
    let now = now_ms();
    let (token, enrolment) = state.enrolments.create(
        &req.agent_id,
        caller.login(),
        now,
        (hours * 3_600_000.0) as i64,
    )?;
    state.audit.record(
        now,
        caller.login(),
        "create_enrolment",
        &req.agent_id,
        &format!("valid {hours} h"),
    )?;
    state.store.flush().await?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("CENTER");
    let fingerprint = key_fingerprint(&state.enrol.center_key);
    // Over HTTPS the box trusts the county CA, kept where the agent's template expects it.
    let (scheme, ca) =
        if state.https { ("https", " --center-ca /etc/xueliang/ca.pem") } else { ("http", "") };
    let command = format!(
        "xl-agent enroll --center {scheme}://{host}{ca} --token {token} --center-key-fingerprint {fingerprint}"
    );
    Ok((
        StatusCode::CREATED,
        Json(EnrolmentCreated {
            token,
            agent_id: enrolment.agent_id,
            expires_ms: enrolment.expires_ms,
            command,
        }),
    ))
}

/// `GET /api/enrolments` (admin): every enrolment, without tokens.
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<Enrolment>>, ApiError> {
    caller.require(Permission::Administer)?;
    Ok(Json(state.enrolments.list()?))
}

/// `POST /api/enroll` (the box, with its token).
pub(super) async fn enroll(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<Json<Enrolled>, ApiError> {
    let Json(req) = body.map_err(|e| refused_body(e, "{\"token\": ..., \"public_key\": ...}"))?;
    at_most("token", Some(req.token.as_str()), MAX_TOKEN_CHARS)?;
    at_most("hostname", Some(req.hostname.as_str()), MAX_HOSTNAME_CHARS)?;
    if req.public_key.parse::<VerifyingKey>().is_err() {
        return Err(ApiError::bad_request(
            "public_key is not an Ed25519 public key (44 characters of base64, as `xl-agent key` prints it)",
        ));
    }
    let settings = state.enrol.clone();
    let mqtt_url = match (&settings.mqtt_url, settings.embedded) {
        (Some(url), _) => url.clone(),
        (None, Some((port, tls))) => {
            let host =
                headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            // The host part of `host:port` or `[v6]:port`.
            let host = host
                .rsplit_once(':')
                .filter(|(h, p)| p.parse::<u16>().is_ok() && !h.is_empty())
                .map_or(host, |(h, _)| h);
            format!("{}://{host}:{port}", if tls { "mqtts" } else { "mqtt" })
        }
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the center uses an external broker and was started without --agent-mqtt-url: the administrator must set it",
            ));
        }
    };
    let now = now_ms();
    let enrolments = state.enrolments.clone();
    let (token, key) = (req.token.clone(), req.public_key.clone());
    let enrolment = blocking(move || {
        enrolments.redeem(&token, &key, now).map_err(|e| match e {
            RedeemError::Unknown => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
            RedeemError::Used { .. } | RedeemError::Expired { .. } => {
                ApiError::new(StatusCode::GONE, e.to_string())
            }
            RedeemError::Store(e) => e.into(),
        })
    })
    .await?;
    let agent_id = enrolment.agent_id.clone();
    let password =
        (settings.passwords || settings.accounts.is_some()).then(crate::access::generate_password);
    if let (Some(accounts), Some(password)) = (&settings.accounts, &password)
        && let Err(e) = accounts.admit(&agent_id, password).await
    {
        tracing::error!(agent = %agent_id, "enrolment: {e}");
        state.enrolments.release(&req.token, &enrolment)?;
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "the broker did not take this box's account ({e}); the token still works: try again, or tell the county's administrator"
            ),
        ));
    }
    // The embedded broker checks the hash; Mosquitto keeps its own.
    let hash = password.as_deref().filter(|_| settings.passwords).map(PasswordHash::new);
    let keys = state.keys.clone();
    let (agent, public_key) = (agent_id.clone(), req.public_key.clone());
    blocking(move || keys.register(&agent, &public_key, hash.as_ref()).map_err(ApiError::internal))
        .await?;
    let detail =
        if req.hostname.is_empty() { String::new() } else { format!("from host {}", req.hostname) };
    state.audit.record(now, &format!("agent:{agent_id}"), "enrol", &agent_id, &detail)?;
    state.store.flush().await?;
    let pushed = state.configs.get(&agent_id)?;
    let config_message = match &pushed {
        Some(record) => Some(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            state.configs.signed(record)?,
        )),
        None => None,
    };
    let (config_toml, config_version) =
        pushed.map_or((String::new(), 0), |c| (c.config_toml, c.version));
    Ok(Json(Enrolled {
        mqtt_username: password.as_ref().map(|_| agent_id.clone()),
        // Mosquitto resumes sessions; the embedded broker (rumqttd) does not.
        mqtt_persistent_session: settings.accounts.is_some(),
        mqtt_password: password,
        agent_id,
        mqtt_url,
        center_key: settings.center_key,
        config_toml,
        config_version,
        config_message,
    }))
}
