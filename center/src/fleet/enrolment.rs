//! Enrolment of edge boxes: an administrator creates a one-time token for an agent id; on site,
//! `xl-agent enroll --center URL --token T` redeems it with the box's public key and receives
//! what the box needs to deliver (the broker's URL and its password there, the center's key, its
//! first config). Tokens are short enough to type, kept only as their SHA-256 (a copy of the
//! store enrols nobody), expire, and work once: the first redemption wins, atomically.

use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use xueliang_proto::signing::sha256;

use crate::store::{Store, StoreError};

/// Letters and digits that cannot be mistaken for one another when read aloud or typed.
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters in a token (about 99 bits), written in groups of five.
const TOKEN_CHARS: usize = 20;

/// An enrolment as stored (under the SHA-256 of its token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrolment {
    /// The agent id the box will have.
    pub agent_id: String,
    /// The administrator who created it.
    pub created_by: String,
    /// When, UTC ms.
    pub created_ms: i64,
    /// When it stops working, UTC ms.
    pub expires_ms: i64,
    /// When it was redeemed, if it was.
    pub used_ms: Option<i64>,
    /// The public key of the box that redeemed it.
    pub used_key: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    /// Not a token of this center (mistyped, or from another county).
    #[error(
        "this is not an enrolment token of this center: check it for typos, or ask the county's administrator for a new one"
    )]
    Unknown,
    /// Already redeemed.
    #[error("this enrolment token was already used, at {}, to enrol {agent_id}: a token works once; ask the county's administrator for a new one", local_time(*.at_ms))]
    Used {
        /// The box it enrolled.
        agent_id: String,
        /// When, UTC ms.
        at_ms: i64,
    },
    /// Expired.
    #[error("this enrolment token for {agent_id} expired at {}: ask the county's administrator for a new one", local_time(*.at_ms))]
    Expired {
        /// The box it was for.
        agent_id: String,
        /// When it expired, UTC ms.
        at_ms: i64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `ms` as Beijing time, as the administrator and the installer read it.
pub(crate) fn local_time(ms: i64) -> String {
    let offset = jiff::tz::TimeZone::fixed(jiff::tz::offset(8));
    jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| ms.to_string(),
        |t| t.to_zoned(offset).strftime("%Y-%m-%d %H:%M:%S %:z").to_string(),
    )
}

/// A token as typed: case, spaces and dashes do not matter.
fn normalized(token: &str) -> String {
    token.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// The enrolments tree.
#[derive(Debug, Clone)]
pub struct Enrolments {
    tree: crate::store::Tree,
}

impl Enrolments {
    /// Opens the enrolments kept in `store`'s database.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self { tree: store.open_tree("enrolments")? })
    }

    /// A new token for `agent_id`, valid `valid_ms` from `now_ms`; returns the token (shown
    /// once) and the enrolment.
    pub fn create(
        &self,
        agent_id: &str,
        created_by: &str,
        now_ms: i64,
        valid_ms: i64,
    ) -> Result<(String, Enrolment), StoreError> {
        let mut random = [0u8; TOKEN_CHARS];
        SystemRandom::new().fill(&mut random).map_err(|_| StoreError::Corrupt {
            id: "enrolment".into(),
            message: "no randomness for a token".into(),
        })?;
        // 256 is not a multiple of 31: the slight bias costs well under a bit of the ~99.
        let chars: Vec<char> =
            random.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
        let token =
            chars.chunks(5).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-");
        let enrolment = Enrolment {
            agent_id: agent_id.to_owned(),
            created_by: created_by.to_owned(),
            created_ms: now_ms,
            expires_ms: now_ms + valid_ms,
            used_ms: None,
            used_key: None,
        };
        self.tree.insert(sha256(normalized(&token).as_bytes()), encode(&enrolment))?;
        Ok((token, enrolment))
    }

    /// Redeems `token` for the box with `public_key`: once, before it expires.
    pub fn redeem(
        &self,
        token: &str,
        public_key: &str,
        now_ms: i64,
    ) -> Result<Enrolment, RedeemError> {
        let key = sha256(normalized(token).as_bytes());
        loop {
            let Some(old) = self.tree.get(&key)? else {
                return Err(RedeemError::Unknown);
            };
            let current: Enrolment = serde_json::from_slice(&old).map_err(|e| {
                StoreError::Corrupt { id: "enrolment".into(), message: e.to_string() }
            })?;
            if let Some(at_ms) = current.used_ms {
                return Err(RedeemError::Used { agent_id: current.agent_id, at_ms });
            }
            if now_ms >= current.expires_ms {
                return Err(RedeemError::Expired {
                    agent_id: current.agent_id,
                    at_ms: current.expires_ms,
                });
            }
            let used = Enrolment {
                used_ms: Some(now_ms),
                used_key: Some(public_key.to_owned()),
                ..current
            };
            // Compare-and-swap: of two boxes racing with one token, one wins.
            if self.tree.compare_and_swap(&key, Some(old), Some(encode(&used)))?.is_ok() {
                self.tree.flush_blocking()?;
                return Ok(used);
            }
        }
    }

    /// Makes `token`, redeemed as `used`, work again: the box could not be given what it
    /// needs (its broker account), through no fault of its installer's.
    pub fn release(&self, token: &str, used: &Enrolment) -> Result<(), StoreError> {
        let key = sha256(normalized(token).as_bytes());
        let unused = Enrolment { used_ms: None, used_key: None, ..used.clone() };
        // Only the redemption it undoes: anything else that happened since stays.
        let _ = self.tree.compare_and_swap(&key, Some(encode(used)), Some(encode(&unused)))?;
        self.tree.flush_blocking()?;
        Ok(())
    }

    /// Every enrolment, newest first.
    pub fn list(&self) -> Result<Vec<Enrolment>, StoreError> {
        let mut all = Vec::new();
        for item in self.tree.iter() {
            let (_, v) = item?;
            if let Ok(e) = serde_json::from_slice::<Enrolment>(&v) {
                all.push(e);
            }
        }
        all.sort_by_key(|e| std::cmp::Reverse(e.created_ms));
        Ok(all)
    }
}

fn encode(e: &Enrolment) -> Vec<u8> {
    // Plain fields: serializing cannot fail.
    serde_json::to_vec(e).expect("an Enrolment serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_once_before_it_expires_however_it_is_typed() {
        let dir = tempfile::tempdir().unwrap();
        let e = Enrolments::open(&Store::for_test(dir.path()).unwrap()).unwrap();
        let (token, _) = e.create("village-7", "admin", 1_000, 60_000).unwrap();
        assert_eq!(token.len(), 23, "4 groups of 5");
        assert!(token.chars().all(|c| c == '-' || ALPHABET.contains(&(c as u8))), "{token}");
        assert!(matches!(e.redeem("AAAAA-AAAAA", "k", 2_000), Err(RedeemError::Unknown)));
        let typed = token.to_lowercase().replace('-', " ");
        let used = e.redeem(&typed, "key-1", 2_000).unwrap();
        assert_eq!(
            (used.agent_id.as_str(), used.used_key.as_deref()),
            ("village-7", Some("key-1"))
        );
        let again = e.redeem(&token, "key-2", 3_000).unwrap_err().to_string();
        assert!(again.starts_with("this enrolment token was already used, at 1970-01-01 08:00:02 +08:00, to enrol village-7"), "{again}");

        let (late, _) = e.create("village-8", "admin", 1_000, 60_000).unwrap();
        let expired = e.redeem(&late, "k", 61_000).unwrap_err().to_string();
        assert!(
            expired.contains("for village-8 expired at 1970-01-01 08:01:01 +08:00"),
            "{expired}"
        );
        assert_eq!(e.list().unwrap().len(), 2);
    }
}
