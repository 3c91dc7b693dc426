//! Login sessions: a random token handed out at login, kept only as its SHA-256 in the store
//! (a copy of the database does not log anyone in), valid for one shift and across restarts,
//! and ended sooner when left unused for the idle timeout. A session carries its user's stamp
//! ([`Users::session_user`](super::Users::session_user)), so a disabled or removed user, or a
//! new password, ends it.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use xueliang_proto::signing::sha256;

use crate::store::{Store, StoreError};

/// How long a session lasts at most: a 12-hour duty shift.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// How long a session may go unused before it ends, unless the center is told otherwise.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30 * 60);

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Who logged in.
    pub login: String,
    /// When, UTC ms.
    pub created_ms: i64,
    /// When it ends, UTC ms.
    pub expires_ms: i64,
    /// When it was last used, UTC ms (to the idle timeout's tenth, or a minute).
    #[serde(default)]
    pub last_seen_ms: i64,
    /// The user's stamp when it was opened (a session stored before stamps has none, and ends).
    #[serde(default)]
    pub stamp: String,
}

/// The sessions tree.
#[derive(Debug, Clone)]
pub struct Sessions {
    tree: crate::store::Tree,
    idle_ms: i64,
}

impl Sessions {
    /// Opens the sessions kept in `store`'s database; a session unused for `idle` ends.
    pub fn open(store: &Store, idle: Duration) -> Result<Self, StoreError> {
        let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX).max(1);
        Ok(Self { tree: store.open_tree("sessions")?, idle_ms })
    }

    /// A new session for `login` carrying `stamp`; returns its token and the session. Sessions
    /// that have ended are deleted first, so the tree holds only live ones.
    pub fn create(
        &self,
        login: &str,
        stamp: &str,
        now_ms: i64,
    ) -> Result<(String, Session), StoreError> {
        self.purge(now_ms)?;
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
            last_seen_ms: now_ms,
            stamp: stamp.to_owned(),
        };
        // Plain fields: serializing cannot fail.
        self.tree.insert(
            sha256(token.as_bytes()),
            serde_json::to_vec(&session).expect("a Session serializes"),
        )?;
        Ok((token, session))
    }

    /// Whether `s` is still open at `now_ms`: neither past its lifetime nor idle too long.
    fn open_at(&self, s: &Session, now_ms: i64) -> bool {
        s.expires_ms > now_ms && now_ms - s.last_seen_ms <= self.idle_ms
    }

    /// The live session `token` opens, if any, its idle clock started again (an ended one is
    /// removed).
    pub fn get(&self, token: &str, now_ms: i64) -> Result<Option<Session>, StoreError> {
        let key = sha256(token.as_bytes());
        let Some(bytes) = self.tree.get(&key)? else { return Ok(None) };
        let mut session = match serde_json::from_slice::<Session>(&bytes) {
            Ok(s) if self.open_at(&s, now_ms) => s,
            _ => {
                self.tree.remove(&key)?;
                return Ok(None);
            }
        };
        // Written again only every tenth of the idle timeout (at most a minute), not on every
        // request; and only if it is still there, so a request in flight cannot bring back a
        // session logged out meanwhile.
        if now_ms - session.last_seen_ms >= (self.idle_ms / 10).min(60_000) {
            session.last_seen_ms = now_ms;
            let new = serde_json::to_vec(&session).expect("a Session serializes");
            let _ = self.tree.compare_and_swap(&key, Some(bytes), Some(new))?;
        }
        Ok(Some(session))
    }

    /// Ends the session `token` opens.
    pub fn remove(&self, token: &str) -> Result<(), StoreError> {
        self.tree.remove(sha256(token.as_bytes()))?;
        Ok(())
    }

    /// Deletes the sessions that have ended (or cannot be read).
    fn purge(&self, now_ms: i64) -> Result<(), StoreError> {
        for entry in self.tree.iter() {
            let (key, bytes) = entry?;
            let live =
                serde_json::from_slice::<Session>(&bytes).is_ok_and(|s| self.open_at(&s, now_ms));
            if !live {
                self.tree.remove(key)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_session_until_it_expires_idles_or_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sessions::open(&Store::for_test(dir.path()).unwrap(), DEFAULT_IDLE).unwrap();
        let (token, session) = s.create("zhang", "stamp", 1000).unwrap();
        assert_eq!(s.get(&token, 2000).unwrap().map(|s| s.stamp), Some("stamp".into()));
        assert_eq!(s.get("forged", 2000).unwrap(), None);
        // Used every 20 minutes, it lasts its whole shift, and not beyond.
        let mut now = 1000;
        while now + 20 * 60_000 < session.expires_ms {
            now += 20 * 60_000;
            assert!(s.get(&token, now).unwrap().is_some(), "used at {now}");
        }
        assert_eq!(s.get(&token, session.expires_ms).unwrap(), None, "expired");
        let (token, _) = s.create("zhang", "stamp", 1000).unwrap();
        s.remove(&token).unwrap();
        assert_eq!(s.get(&token, 2000).unwrap(), None);
        let (token, _) = s.create("zhang", "stamp", 1000).unwrap();
        assert_eq!(s.get(&token, 1000 + 31 * 60_000).unwrap(), None, "idle 31 minutes");
    }

    #[test]
    fn ended_sessions_are_deleted_at_the_next_log_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap();
        let s = Sessions::open(&store, Duration::from_secs(60)).unwrap();
        for _ in 0..5 {
            s.create("zhang", "stamp", 1000).unwrap();
        }
        let (token, _) = s.create("li", "stamp", 1000 + 61_000).unwrap();
        assert_eq!(s.tree.len(), 1);
        assert!(s.get(&token, 1000 + 62_000).unwrap().is_some());
    }
}
