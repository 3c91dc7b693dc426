//! Who is calling and what their role lets them do: log-in, log-out and the session extractor;
//! the permission table is `access/roles.rs`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use xueliang_proto::endpoint::now_ms;

use super::{ApiError, ApiState, blocking};
use crate::access::{Permission, Role, User};
use crate::domain::AlarmRecord;

/// The session cookie the console uses (the API also takes `Authorization: Bearer TOKEN`).
pub const SESSION_COOKIE: &str = "xl_session";

/// The logged-in user making a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub user: User,
    token: String,
}

impl Caller {
    /// Their login.
    pub fn login(&self) -> &str {
        &self.user.login
    }

    /// Refuses (403) what their role may not do.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if p.allowed(self.user.role) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("role {} may not {}", self.user.role, p.describe()),
        ))
    }

    /// Refuses (403) an alarm this user may not see: a police user sees only what was
    /// dispatched to its unit.
    pub fn may_see(&self, r: &AlarmRecord) -> Result<(), ApiError> {
        self.require(Permission::ReadAlarms)?;
        match (&self.user.role, &self.user.unit) {
            (Role::Police, Some(unit)) if r.dispatched_to.contains(unit) => Ok(()),
            (Role::Police, _) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("alarm {} was not dispatched to your unit", r.id),
            )),
            _ => Ok(()),
        }
    }
}

/// The session token of a request: the bearer token, else the session cookie.
fn token(headers: &HeaderMap) -> Option<String> {
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()?.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        return Some(token.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('=').map(str::to_owned))
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
        let token =
            token(&parts.headers).ok_or_else(|| unauthorized("log in first: POST /api/login"))?;
        let session = state
            .sessions
            .get(&token, now_ms())?
            .ok_or_else(|| unauthorized("the session ended or is unknown: log in again"))?;
        let user = state
            .users
            .get(&session.login)
            .ok_or_else(|| unauthorized("this user no longer exists: log in as another"))?;
        Ok(Self { user, token })
    }
}

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

/// `POST /api/login`.
pub(super) async fn login(
    State(state): State<ApiState>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; send {{\"login\": ..., \"password\": ...}}",
            e.body_text()
        ))
    })?;
    let users = state.users.clone();
    let (login, password) = (req.login.clone(), req.password);
    // argon2 takes tens of milliseconds of CPU: not on the async threads.
    let user = blocking(move || Ok(users.verify(&login, &password))).await?;
    let now = now_ms();
    let Some(user) = user else {
        state.audit.record(now, &req.login, "login_failed", &req.login, "")?;
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong login or password"));
    };
    let (token, session) = state.sessions.create(&user.login, now)?;
    state.audit.record(now, &user.login, "login", &user.login, &user.role.to_string())?;
    state.store.flush().await?;
    let max_age = (session.expires_ms - now) / 1000;
    let cookie =
        format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}");
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

/// `GET /api/me`: who is logged in.
pub(super) async fn me(caller: Caller) -> Json<User> {
    Json(caller.user)
}
