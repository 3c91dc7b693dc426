//! Login sessions: a random token handed out at login, kept only as its SHA-256 in the store
//! (a copy of the database does not log anyone in), valid for one shift and across restarts.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use xueliang_proto::signing::sha256;

use crate::store::{Store, StoreError};

/// How long a session lasts: a 12-hour duty shift.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Who logged in.
    pub login: String,
    /// When, UTC ms.
    pub created_ms: i64,
    /// When it ends, UTC ms.
    pub expires_ms: i64,
}

/// The sessions tree.
#[derive(Debug, Clone)]
pub struct Sessions {
    tree: sled::Tree,
}

impl Sessions {
    /// Opens the sessions kept in `store`'s database.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self { tree: store.open_tree("sessions")? })
    }

    /// A new session for `login`; returns its token and the session.
    pub fn create(&self, login: &str, now_ms: i64) -> Result<(String, Session), StoreError> {
        let mut secret = [0u8; 32];
        SystemRandom::new().fill(&mut secret).map_err(|_| StoreError::Corrupt {
            id: "session".into(),
            message: "no randomness for a token".into(),
        })?;
        let token = B64.encode(secret);
        let session = Session {
            login: login.to_owned(),
            created_ms: now_ms,
            expires_ms: now_ms + LIFETIME.as_millis() as i64,
        };
        // Plain fields: serializing cannot fail.
        self.tree.insert(
            sha256(token.as_bytes()),
            serde_json::to_vec(&session).expect("a Session serializes"),
        )?;
        Ok((token, session))
    }

    /// The live session `token` opens, if any (an expired one is removed).
    pub fn get(&self, token: &str, now_ms: i64) -> Result<Option<Session>, StoreError> {
        let key = sha256(token.as_bytes());
        let Some(bytes) = self.tree.get(&key)? else { return Ok(None) };
        match serde_json::from_slice::<Session>(&bytes) {
            Ok(s) if s.expires_ms > now_ms => Ok(Some(s)),
            _ => {
                self.tree.remove(&key)?;
                Ok(None)
            }
        }
    }

    /// Ends the session `token` opens.
    pub fn remove(&self, token: &str) -> Result<(), StoreError> {
        self.tree.remove(sha256(token.as_bytes()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_session_until_it_expires_or_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sessions::open(&Store::open(dir.path()).unwrap()).unwrap();
        let (token, session) = s.create("zhang", 1000).unwrap();
        assert_eq!(s.get(&token, 2000).unwrap(), Some(session.clone()));
        assert_eq!(s.get("forged", 2000).unwrap(), None);
        assert_eq!(s.get(&token, session.expires_ms).unwrap(), None, "expired");
        let (token, _) = s.create("zhang", 1000).unwrap();
        s.remove(&token).unwrap();
        assert_eq!(s.get(&token, 2000).unwrap(), None);
    }
}
