//! Logging in and out, and who is logged in (`GET /api/me`).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use xueliang_proto::endpoint::now_ms;

use super::caller::{Caller, SESSION_COOKIE};
use super::{ApiError, ApiState, blocking};
use crate::access::{Permission, User};

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
}

impl View {
    /// The permission that opens it.
    fn needs(self) -> Permission {
        match self {
            View::Alarms => Permission::ReadAlarms,
            View::Fleet => Permission::ReadFleet,
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

/// `GET /api/me`: who is logged in, and what they may do.
pub(super) async fn me(caller: Caller) -> Json<Me> {
    let permissions = caller.user.role.permissions();
    let views = [View::Alarms, View::Fleet]
        .into_iter()
        .filter(|v| permissions.contains(&v.needs()))
        .collect();
    Json(Me { user: caller.user, permissions, views })
}
