//! Who is calling: the session extractor (a bearer token or the session cookie), and the
//! refusals of what the caller's role may not do (the table is `access/roles.rs`) or may not
//! see (a police user sees only its unit's alarms).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use xueliang_proto::endpoint::now_ms;

use super::{ApiError, ApiState};
use crate::access::{Permission, Role, User};
use crate::domain::AlarmRecord;

/// The session cookie the console uses (the API also takes `Authorization: Bearer TOKEN`).
pub const SESSION_COOKIE: &str = "xl_session";

/// The logged-in user making a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub user: User,
    /// The session's token (log-out ends it).
    pub(super) token: String,
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
