//! Full pictures and clips on demand: a tier above asks the center below that forwarded an
//! event for its picture or one of its clips, in a request signed with its own key; the center
//! below serves only the picture or clip its box signed the hash of, only to the center above
//! it, and audits who asked; the center above takes what came only if it hashes to that signed
//! hash.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::signing::{SigningKey, TIER_FETCH_SIGNATURE_FIELD, VerifyingKey, hex, sha256};
use xueliang_proto::{Message, SCHEMA_VERSION, TierFetch, decode_limited};

use super::Below;
use crate::domain::{AlarmRecord, ClipRecord};

/// The header carrying a signed [`TierFetch`] (base64).
pub const FETCH_HEADER: &str = "x-xl-tier-fetch";

/// How far a request's time may be from the clock of the center below, ms.
const SKEW_MS: i64 = 60_000;

/// Why a picture could not be fetched, or a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The center below is not reachable from here (no API in `below.toml`).
    #[error("the pictures and clips of {0} are not fetched here: give its url in below.toml")]
    NoWay(String),
    /// The center below did not give it.
    #[error("the center below did not give what was asked for: {0}")]
    Failed(String),
    /// What came (a picture, a clip) is not what its box signed.
    #[error("the {0} from {1} does not match the hash its box signed")]
    Mismatch(&'static str, String),
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
    /// Clips fetched lately, by clip and viewer.
    pub kept: Arc<Mutex<Kept>>,
}

/// What a fetch asks for: the tier route's path after `/api/tier/`, the SHA-256 (hex) the box
/// signed, the clip (empty: the picture) and the most bytes it may have.
struct Wanted<'a> {
    path: &'a str,
    sha256: &'a str,
    clip_id: &'a str,
    most: Option<u64>,
}

/// How long a fetched clip is kept for its viewer, ms (a player asks for it in many ranges).
const CLIP_MS: u64 = 10 * 60 * 1000;
/// How many fetched clips are kept at most, and how many bytes of them (the newest is kept
/// whatever its size).
const KEPT: usize = 8;
const KEPT_BYTES: usize = 256 << 20;

/// The clips fetched lately from below, by (clip, viewer), the oldest dropped first.
#[derive(Debug, Default)]
pub struct Kept(VecDeque<(Instant, (String, String), Bytes)>);

impl Kept {
    /// The clip kept under `key`, if it was fetched less than [`CLIP_MS`] ago.
    fn get(&mut self, key: &(String, String)) -> Option<Bytes> {
        self.0.retain(|(at, _, _)| at.elapsed() < Duration::from_millis(CLIP_MS));
        self.0.iter().find(|(_, k, _)| k == key).map(|(_, _, b)| b.clone())
    }

    /// Keeps `bytes` under `key`, dropping the oldest beyond [`KEPT`] or [`KEPT_BYTES`].
    fn put(&mut self, key: (String, String), bytes: Bytes) {
        self.0.retain(|(_, k, _)| *k != key);
        self.0.push_back((Instant::now(), key, bytes));
        let size = |kept: &VecDeque<(Instant, (String, String), Bytes)>| {
            kept.iter().map(|(_, _, b)| b.len()).sum::<usize>()
        };
        while self.0.len() > KEPT || (self.0.len() > 1 && size(&self.0) > KEPT_BYTES) {
            self.0.pop_front();
        }
    }
}

impl Fetch {
    /// The full picture of `r` (forwarded from below) for `by`, from the center that forwarded
    /// it, checked against the hash its box signed.
    pub async fn picture(&self, r: &AlarmRecord, by: &str) -> Result<Vec<u8>, FetchError> {
        let path = format!("pictures/{}", r.id);
        let what = Wanted { path: &path, sha256: &r.snapshot_sha256, clip_id: "", most: None };
        Ok(self.get(r, what, by).await?.to_vec())
    }

    /// Clip `clip` of `r` (forwarded from below) for `by`, from the center that forwarded it,
    /// checked against the hash its box signed. Kept here a while for `by` alone ([`CLIP_MS`]),
    /// so that a player's many range requests make one fetch and each viewer is audited below.
    pub async fn clip(
        &self,
        r: &AlarmRecord,
        clip: &ClipRecord,
        by: &str,
    ) -> Result<Bytes, FetchError> {
        let key = (clip.clip_id.clone(), by.to_owned());
        if let Some(bytes) = self.kept.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(bytes);
        }
        let path = format!("clips/{}", clip.clip_id);
        let most = Some(clip.size);
        let what = Wanted { path: &path, sha256: &clip.sha256, clip_id: &clip.clip_id, most };
        let bytes = self.get(r, what, by).await?;
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).put(key, bytes.clone());
        Ok(bytes)
    }

    /// What `what` names of `r`, asked for `by` with a request signed by this center, from the
    /// center below that forwarded `r`, if it hashes to the SHA-256 the box signed.
    async fn get(&self, r: &AlarmRecord, what: Wanted<'_>, by: &str) -> Result<Bytes, FetchError> {
        let from = r.forwarded.as_ref().map_or("", |f| f.by.as_str());
        let Some((url, http)) = self.below.api(from) else {
            return Err(FetchError::NoWay(from.to_owned()));
        };
        let request = TierFetch {
            schema_version: SCHEMA_VERSION as i32,
            id: r.id.clone(),
            sha256: what.sha256.to_owned(),
            by: by.to_owned(),
            time_ms: now_ms(),
            signature: Default::default(),
            clip_id: what.clip_id.to_owned(),
        };
        // Signing fails only on malformed protobuf, which this is not.
        let signed = self
            .key
            .sign(request.encode_to_vec(), TIER_FETCH_SIGNATURE_FIELD, &[])
            .unwrap_or_else(|_| request.encode_to_vec());
        let failed = |e: reqwest::Error| FetchError::Failed(e.to_string());
        let resp = http
            .get(format!("{url}/api/tier/{}", what.path))
            .header(FETCH_HEADER, B64.encode(signed))
            .send()
            .await
            .map_err(failed)?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(FetchError::Failed(format!("{status}: {}", text.trim())));
        }
        let mismatch = || {
            let kind = if what.clip_id.is_empty() { "picture" } else { "clip" };
            FetchError::Mismatch(kind, from.to_owned())
        };
        let (mut resp, mut bytes) = (resp, Vec::new());
        while let Some(piece) = resp.chunk().await.map_err(failed)? {
            bytes.extend_from_slice(&piece);
            // No more than the box said it has.
            if what.most.is_some_and(|most| bytes.len() as u64 > most) {
                return Err(mismatch());
            }
        }
        if what.sha256.is_empty() || hex(&sha256(&bytes)) != what.sha256 {
            return Err(mismatch());
        }
        Ok(bytes.into())
    }

    /// The request in `header` for what the route names (`named`: the event for its picture,
    /// the clip for a clip), if the center above signed it and it is now.
    pub fn check(&self, header: &str, clip: bool, named: &str) -> Result<TierFetch, FetchError> {
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
        let asked = if clip { &request.clip_id } else { &request.id };
        if *asked != named || clip == request.clip_id.is_empty() {
            return Err(refused("the request is for something else"));
        }
        if (now_ms() - request.time_ms).abs() > SKEW_MS {
            return Err(refused("the request is not of this minute (check both clocks)"));
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_are_kept_for_their_viewer_the_oldest_dropped_first() {
        let mut kept = Kept::default();
        let key = |clip: &str, by: &str| (clip.to_owned(), by.to_owned());
        kept.put(key("k1", "duty"), Bytes::from_static(b"one"));
        assert_eq!(kept.get(&key("k1", "duty")).as_deref(), Some(&b"one"[..]));
        assert_eq!(kept.get(&key("k1", "other")), None, "another viewer fetches it anew");
        for n in 0..KEPT {
            kept.put(key(&format!("c{n}"), "duty"), Bytes::from_static(b"x"));
        }
        assert_eq!(kept.get(&key("k1", "duty")), None, "the oldest beyond the count");
        let big = Bytes::from(vec![0; KEPT_BYTES]);
        kept.put(key("big", "duty"), big.clone());
        assert_eq!(kept.0.len(), 1, "beyond the bytes, only the newest stays");
        assert_eq!(kept.get(&key("big", "duty")), Some(big));
    }
}
