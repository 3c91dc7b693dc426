//! A logged-in HTTP client of the center's API, as the demo and the tests use it.

use std::time::Duration;

/// Why logging in failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The request did not get through.
    #[error("cannot reach the center: {0}")]
    Http(#[from] reqwest::Error),
    /// The center refused the login.
    #[error("the center refused the login {login}: {answer}")]
    Refused {
        /// The login refused.
        login: String,
        /// The center's answer.
        answer: String,
    },
}

/// Logs in to the center at `base` (`http://host:port`) as `login` and returns a client that
/// sends the session's bearer token with every request, each request given `timeout`.
pub async fn login(
    base: &str,
    login: &str,
    password: &str,
    timeout: Option<Duration>,
) -> Result<reqwest::Client, LoginError> {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({ "login": login, "password": password }))
        .send()
        .await?;
    if !resp.status().is_success() {
        let answer = resp.text().await.unwrap_or_default();
        return Err(LoginError::Refused { login: login.to_owned(), answer });
    }
    let body: serde_json::Value = resp.json().await?;
    let token = body["token"].as_str().unwrap_or_default();
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {token}").parse().map_err(|_| LoginError::Refused {
        login: login.to_owned(),
        answer: "the token is not a header value".into(),
    })?;
    headers.insert(reqwest::header::AUTHORIZATION, bearer);
    let mut builder = reqwest::Client::builder().default_headers(headers);
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    Ok(builder.build()?)
}
