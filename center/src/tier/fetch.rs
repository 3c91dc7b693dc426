//! Full pictures on demand: a tier above asks the center below that forwarded an event for its
//! picture, in a request signed with its own key; the center below serves only the picture its
//! box signed the hash of, only to the center above it, and audits who asked; the center above
//! keeps the picture only if it hashes to that signed hash.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::signing::{SigningKey, TIER_FETCH_SIGNATURE_FIELD, VerifyingKey, hex, sha256};
use xueliang_proto::{Message, SCHEMA_VERSION, TierFetch, decode_limited};

use super::Below;
use crate::domain::AlarmRecord;

/// The header carrying a signed [`TierFetch`] (base64).
pub const FETCH_HEADER: &str = "x-xl-tier-fetch";

/// How far a request's time may be from the clock of the center below, ms.
const SKEW_MS: i64 = 60_000;

/// Why a picture could not be fetched, or a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The center below is not reachable from here (no API in `below.toml`).
    #[error("the pictures of {0} are not fetched here: give its url in below.toml")]
    NoWay(String),
    /// The center below did not give it.
    #[error("the center below did not give the picture: {0}")]
    Failed(String),
    /// What came is not the picture its box signed.
    #[error("the picture from {0} does not match the hash its box signed")]
    Mismatch(String),
    /// A request not signed by the center above, or not now.
    #[error("{0}")]
    Refused(String),
}

/// Fetches pictures from the tier below and checks requests from the tier above.
#[derive(Debug, Clone)]
pub struct Fetch {
    /// The centers below.
    pub below: Below,
    /// This center's key, which signs its requests.
    pub key: Arc<SigningKey>,
    /// The key of the center above, whose requests this center serves (none: it forwards to
    /// nobody).
    pub above: Option<VerifyingKey>,
}

impl Fetch {
    /// The full picture of `r` (forwarded from below) for `by`, from the center that forwarded
    /// it, checked against the hash its box signed.
    pub async fn picture(&self, r: &AlarmRecord, by: &str) -> Result<Vec<u8>, FetchError> {
        let from = r.forwarded.as_ref().map_or("", |f| f.by.as_str());
        let Some((url, http)) = self.below.api(from) else {
            return Err(FetchError::NoWay(from.to_owned()));
        };
        let request = TierFetch {
            schema_version: SCHEMA_VERSION as i32,
            id: r.id.clone(),
            sha256: r.snapshot_sha256.clone(),
            by: by.to_owned(),
            time_ms: now_ms(),
            signature: Default::default(),
        };
        // Signing fails only on malformed protobuf, which this is not.
        let signed = self
            .key
            .sign(request.encode_to_vec(), TIER_FETCH_SIGNATURE_FIELD, &[])
            .unwrap_or_else(|_| request.encode_to_vec());
        let failed = |e: reqwest::Error| FetchError::Failed(e.to_string());
        let resp = http
            .get(format!("{url}/api/tier/pictures/{}", r.id))
            .header(FETCH_HEADER, B64.encode(signed))
            .send()
            .await
            .map_err(failed)?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(FetchError::Failed(format!("{status}: {}", text.trim())));
        }
        let jpeg = resp.bytes().await.map_err(failed)?.to_vec();
        if r.snapshot_sha256.is_empty() || hex(&sha256(&jpeg)) != r.snapshot_sha256 {
            return Err(FetchError::Mismatch(from.to_owned()));
        }
        Ok(jpeg)
    }

    /// The request in `header` for event `id`, if the center above signed it and it is now.
    pub fn check(&self, header: &str, id: &str) -> Result<TierFetch, FetchError> {
        let refused = |why: &str| FetchError::Refused(why.to_owned());
        let Some(above) = &self.above else {
            return Err(refused("this center forwards to no tier above"));
        };
        let bytes = B64.decode(header.trim()).map_err(|_| refused("the request is not base64"))?;
        above
            .verify(&bytes, TIER_FETCH_SIGNATURE_FIELD, &[], "the tier above")
            .map_err(|e| FetchError::Refused(e.to_string()))?;
        let request =
            decode_limited::<TierFetch>(&bytes).map_err(|_| refused("a malformed request"))?;
        if request.id != id {
            return Err(refused("the request is for another event"));
        }
        if (now_ms() - request.time_ms).abs() > SKEW_MS {
            return Err(refused("the request is not of this minute (check both clocks)"));
        }
        Ok(request)
    }
}
