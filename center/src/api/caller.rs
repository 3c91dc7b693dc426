//! Who is calling: the session extractor (a bearer token or the session cookie), the refusals
//! of what the caller's role may not do (the table is `access/roles.rs`) or may not see (a
//! police user sees only its unit's alarms), and the address a request came from.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use xueliang_proto::endpoint::now_ms;

use super::{ApiError, ApiState, HttpsListener};
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
            (Role::Police, Some(unit)) if r.units_here().contains(unit) => Ok(()),
            (Role::Police, _) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("alarm {} was not dispatched to your unit", r.id),
            )),
            _ => Ok(()),
        }
    }
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()?.strip_prefix("Bearer "))
}

/// Whether the request carries a bearer token (an API client's, not a browser's cookie).
pub(super) fn has_bearer(headers: &HeaderMap) -> bool {
    bearer(headers).is_some()
}

/// The session token of a request: the bearer token, else the session cookie.
fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = bearer(headers) {
        return Some(token.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('=').map(str::to_owned))
}

impl Caller {
    /// The caller of session `token`, if it is still open: not past its lifetime nor idle too
    /// long (its idle clock starts again), its user neither removed nor disabled, and their
    /// password unchanged since it was opened.
    pub(super) fn of_session(state: &ApiState, token: String) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
        let session = state
            .sessions
            .get(&token, now_ms())?
            .ok_or_else(|| unauthorized("the session ended or is unknown: log in again"))?;
        // Such a session is left in the store (it can never open again, and goes when it
        // idles out), so each request with it is told why.
        let Some(user) = state.users.session_user(&session.login, &session.stamp) else {
            return Err(unauthorized(
                "the session ended (the user was disabled or removed, or their password changed): log in again",
            ));
        };
        Ok(Self { user, token })
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = token(&parts.headers).ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "log in first: POST /api/login")
        })?;
        Self::of_session(state, token)
    }
}

/// The address a connection came from, as the API is served
/// ([`axum::Router::into_make_service_with_connect_info`]), over HTTP or HTTPS.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, HttpsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, HttpsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// The client address of a request (unspecified where the router runs without [`Peer`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<Peer>>().map(|c| c.0.0.ip().to_canonical());
        Ok(Self(peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}
