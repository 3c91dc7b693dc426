//! The web console's files, compiled into the binary so the center is one file to install and
//! needs nothing from the internet (no build step, no CDN): `/` is the page, `/console/*` its
//! style and its ES modules. What the console may show and which steps it offers come from the
//! API (`GET /api/me`, `GET /api/vocabulary`), not from copies in the scripts.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const SCRIPT: &str = "text/javascript; charset=utf-8";

/// The files under `/console/`: name, content type, content.
const FILES: [(&str, &str, &str); 10] = [
    ("app.css", "text/css; charset=utf-8", include_str!("app.css")),
    ("main.js", SCRIPT, include_str!("main.js")),
    ("i18n.js", SCRIPT, include_str!("i18n.js")),
    ("dom.js", SCRIPT, include_str!("dom.js")),
    ("state.js", SCRIPT, include_str!("state.js")),
    ("api.js", SCRIPT, include_str!("api.js")),
    ("alarms.js", SCRIPT, include_str!("alarms.js")),
    ("station.js", SCRIPT, include_str!("station.js")),
    ("fleet.js", SCRIPT, include_str!("fleet.js")),
    ("counties.js", SCRIPT, include_str!("counties.js")),
];

/// A file of the console: its content type and bytes.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse + Clone {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}

/// The console's routes.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let page = asset("text/html; charset=utf-8", include_str!("index.html"));
    let mut router = Router::new().route("/", get(move || async move { page }));
    for (name, content_type, body) in FILES {
        let file = asset(content_type, body);
        router = router.route(&format!("/console/{name}"), get(move || async move { file }));
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_a_script_imports_is_served() {
        let served: Vec<&str> = FILES.iter().map(|(name, ..)| *name).collect();
        for (name, _, body) in FILES {
            for import in body.split(" from \"./").skip(1) {
                let imported = &import[..import.find('"').unwrap_or(0)];
                assert!(
                    served.contains(&imported),
                    "{name} imports {imported}, which is not served"
                );
            }
        }
        assert!(
            include_str!("index.html").contains(r#"<script type="module" src="/console/main.js">"#)
        );
    }
}
