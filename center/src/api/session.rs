//! Logging in and out, and who is logged in (`GET /api/me`). A log-in is refused at once when
//! its login or password is too long, and goes through the [`LoginThrottle`](super::LoginThrottle):
//! a verification slot, and no lock-out of its login or address.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use xueliang_proto::endpoint::now_ms;

use super::caller::{Caller, ClientAddr, SESSION_COOKIE};
use super::throttle::Wait;
use super::{ApiError, ApiState};
use crate::access::{MAX_PASSWORD_BYTES, Permission, User, valid_login};

/// The largest log-in body: a login and a password of the longest, escaped.
pub(super) const LOGIN_BODY_BYTES: usize = 8 * 1024;

/// Body of `POST /api/login`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name.
    pub login: String,
    /// Password.
    pub password: String,
}

/// Answer to a log-in.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Bearer token (also set as the session cookie).
    pub token: String,
    /// Who logged in.
    pub user: User,
    /// When the session ends, UTC ms.
    pub expires_ms: i64,
}

/// An answer saying when to try again.
fn try_again(status: StatusCode, after: Duration, message: &str) -> Response {
    let mut resp = ApiError::new(status, message).into_response();
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    resp
}

/// `POST /api/login`.
pub(super) async fn login(
    State(state): State<ApiState>,
    ClientAddr(addr): ClientAddr,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| {
        // Too big a body says so (413); anything else is a 400, as it always was.
        let status = match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(
            status,
            format!("{}; send {{\"login\": ..., \"password\": ...}}", e.body_text()),
        )
    })?;
    if !valid_login(&req.login) || req.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::bad_request(format!(
            "a login has 1-64 letters, digits, '-', '_' or '.', a password at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let permit = match state.logins.admit(addr, &req.login).await {
        Ok(permit) => permit,
        Err(Wait::LockedOut(after)) => {
            return Ok(try_again(
                StatusCode::TOO_MANY_REQUESTS,
                after,
                "too many failed log-ins: wait, then try again",
            ));
        }
        Err(Wait::Busy) => {
            return Ok(try_again(
                StatusCode::SERVICE_UNAVAILABLE,
                Duration::from_secs(1),
                "too many log-ins at once: try again",
            ));
        }
    };
    let users = state.users.clone();
    let (login, password) = (req.login.clone(), req.password);
    // argon2 takes tens of milliseconds of CPU: not on the async threads.
    let verified = state.logins.verify(move || users.verify(&login, &password)).await;
    drop(permit);
    let now = now_ms();
    let verified =
        verified.ok_or_else(|| ApiError::internal("no password verifier thread runs"))?;
    let Some(verified) = verified else {
        if let Some(note) = state.logins.failed(addr, &req.login) {
            state.audit.record(now, &note.user, note.action, &note.target, &note.detail)?;
        }
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong login or password"));
    };
    state.logins.succeeded(&req.login);
    let user = verified.user;
    let (token, session) = state.sessions.create(&user.login, &verified.stamp, now)?;
    state.audit.record(now, &user.login, "login", &user.login, &user.role.to_string())?;
    state.store.flush().await?;
    let max_age = (session.expires_ms - now) / 1000;
    // Over HTTPS the browser must never send it in the clear.
    let secure = if state.https { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(LoginResponse { token, user, expires_ms: session.expires_ms }),
    )
        .into_response())
}

/// `POST /api/logout`.
pub(super) async fn logout(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    state.sessions.remove(&caller.token)?;
    state.audit.record(now_ms(), caller.login(), "logout", caller.login(), "")?;
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response())
}

/// A page of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// The alarms (a unit's user: its dispatches).
    Alarms,
    /// The fleet of agents.
    Fleet,
    /// At a tier above: the counties whose events come here.
    Counties,
}

impl View {
    /// The permission that opens it.
    fn needs(self) -> Permission {
        match self {
            View::Alarms => Permission::ReadAlarms,
            View::Fleet => Permission::ReadFleet,
            View::Counties => Permission::ActOnAlarms,
        }
    }
}

/// Answer to `GET /api/me`: the user, and what their role lets them do and open, so the console
/// keeps no copy of the permission table.
#[derive(Debug, Serialize, Deserialize)]
pub struct Me {
    /// Who is logged in.
    #[serde(flatten)]
    pub user: User,
    /// Everything their role may do.
    pub permissions: Vec<Permission>,
    /// The console's pages they may open, the first the one to open.
    pub views: Vec<View>,
}

/// `GET /api/me`: who is logged in, and what they may do. Where centers below forward their
/// events, the counties' view comes first (the county is a tier above's first filter).
pub(super) async fn me(State(state): State<ApiState>, caller: Caller) -> Json<Me> {
    let permissions = caller.user.role.permissions();
    let below = !state.fetch.below.is_empty();
    let views = [View::Counties, View::Alarms, View::Fleet]
        .into_iter()
        .filter(|v| permissions.contains(&v.needs()) && (below || *v != View::Counties))
        .collect();
    Json(Me { user: caller.user, permissions, views })
}
