//! What the API does for browsers: security headers on every answer (the console loads only
//! its own scripts, styles, pictures and clips, and no other site may frame it), and a check that
//! a state-changing request a browser may have sent comes from the center's own pages, so
//! cross-site request forgery does not rest on the cookie's `SameSite` alone.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::ApiError;
use super::caller::has_bearer;

/// The console's policy: its own files only, no inline script or style, no plug-ins, no
/// framing, forms and `<base>` kept home.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// Over HTTPS: browsers use nothing else for a year.
const HSTS: &str = "max-age=31536000";

/// Adds the security headers to every answer (`https`: the center serves HTTPS itself).
pub(super) async fn security_headers(
    State(https): State<bool>,
    req: Request,
    next: Next,
) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let mut set = |name, value| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Same-origin: our own pages still send it (the check below may use it), no one else gets it.
    set(header::REFERRER_POLICY, "same-origin");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::HeaderName::from_static("cross-origin-resource-policy"), "same-origin");
    if https {
        set(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    resp
}

/// The body types this API takes; a page of another site can send none of them without the
/// browser asking first (a CORS preflight, which this API never grants).
const BODY_TYPES: [&str; 2] = ["application/json", "application/toml"];

/// Refuses a state-changing request (POST, PUT, PATCH, DELETE) without a bearer token (a
/// browser's, with the session cookie, or no credential at all) whose `Origin` (or, failing
/// that, `Referer`) names another site than this center (403), or whose body is not JSON (415;
/// TOML for a pushed config). Requests without either header (command-line clients, agents
/// enrolling) pass: browsers send `Origin` with every such request.
pub(super) async fn same_origin(
    State(https): State<bool>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let changes =
        matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    if !changes || has_bearer(req.headers()) {
        return Ok(next.run(req).await);
    }
    let headers = req.headers();
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let claimed = text(header::ORIGIN).or_else(|| text(header::REFERER));
    if let Some(claimed) = claimed
        && !ours(claimed, headers, req.uri().authority().map(|a| a.as_str()), https)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("refused: this request came from a page of {claimed}, not of this center"),
        ));
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || text(header::CONTENT_LENGTH).is_some_and(|n| n.trim() != "0");
    let essence = text(header::CONTENT_TYPE)
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    if has_body && !essence.as_deref().is_some_and(|t| BODY_TYPES.contains(&t)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON, with Content-Type: application/json",
        ));
    }
    Ok(next.run(req).await)
}

/// Whether `claimed` (an origin, or a referring page's address) is this center as the request
/// reached it: the same host and port as `Host` (or the URI's authority, or, behind a reverse
/// proxy, `X-Forwarded-Host`, which a page of another site cannot set), over HTTPS when the
/// center serves HTTPS itself.
fn ours(claimed: &str, headers: &HeaderMap, authority: Option<&str>, https: bool) -> bool {
    let Some((scheme, rest)) = claimed.split_once("://") else { return false };
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || (https && scheme != "https") {
        return false;
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let normal = |h: &str| {
        let h = h.trim().to_ascii_lowercase();
        let default = if scheme == "https" { ":443" } else { ":80" };
        h.strip_suffix(default).map(str::to_owned).unwrap_or(h)
    };
    let claimed = normal(host);
    let forwarded = headers.get("x-forwarded-host").and_then(|v| v.to_str().ok());
    let host_header = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    [host_header, authority, forwarded]
        .into_iter()
        .flatten()
        .flat_map(|h| h.split(','))
        .any(|h| !claimed.is_empty() && normal(h) == claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, h.parse().unwrap());
        m
    }

    #[test]
    fn only_the_centers_own_origin_is_ours() {
        let h = host("county.example:8443");
        assert!(ours("https://county.example:8443", &h, None, true));
        assert!(ours("https://COUNTY.example:8443/#alarms", &h, None, true));
        assert!(!ours("http://county.example:8443", &h, None, true), "not over HTTP");
        assert!(!ours("https://evil.example", &h, None, true));
        assert!(!ours("https://county.example:8444", &h, None, true));
        assert!(!ours("null", &h, None, false));
        assert!(ours("https://county.example/console/", &host("county.example"), None, true));
        assert!(ours("https://county.example", &host("county.example:443"), None, true));
        assert!(ours("http://127.0.0.1:8080", &host("127.0.0.1:8080"), None, false));
        // Behind a TLS proxy: the center sees plain HTTP and the proxy's forwarded host.
        let mut proxied = host("127.0.0.1:8080");
        proxied.insert("x-forwarded-host", "county.example".parse().unwrap());
        assert!(ours("https://county.example", &proxied, None, false));
        assert!(!ours("https://evil.example", &proxied, None, false));
        assert!(!ours("https://", &HeaderMap::new(), Some(""), false));
    }
}
