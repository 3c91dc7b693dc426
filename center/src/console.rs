//! The web console's files, compiled into the binary so the center is one file to install and
//! needs nothing from the internet: `/` is the page, `/console/*` its script and style.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// A file of the console: its content type and bytes.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse + Clone {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}

/// The console's routes.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let page = asset("text/html; charset=utf-8", include_str!("console/index.html"));
    let script = asset("text/javascript; charset=utf-8", include_str!("console/app.js"));
    let style = asset("text/css; charset=utf-8", include_str!("console/app.css"));
    Router::new()
        .route("/", get(move || async move { page }))
        .route("/console/app.js", get(move || async move { script }))
        .route("/console/app.css", get(move || async move { style }))
}
