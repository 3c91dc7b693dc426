//! What the list routes share: the page size a query asks for, a query string read with a
//! 400 that says what is wrong with it, and the length bound of a text parameter.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;

use super::ApiError;

/// Page size from a query's `limit`.
pub(super) fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and 500, got {limit}")));
    }
    Ok(limit)
}

/// A query string's parameters, or a 400 saying what is wrong with them.
pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| ApiError::bad_request(e.body_text()))
}

/// Refuses (400) text parameter `name` longer than `max` characters: what it names (an id, a
/// time) is never longer, so a longer one is a mistake, not worth matching. Characters, not
/// bytes, as the OpenAPI document's `maxLength` counts them.
pub(super) fn at_most(name: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    let chars = value.map_or(0, |v| v.chars().count());
    if chars > max {
        return Err(ApiError::bad_request(format!(
            "{name} is {chars} characters long; at most {max} are taken"
        )));
    }
    Ok(())
}
