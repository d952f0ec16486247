//! Portal sessions (SPEC §18): an API key is exchanged once, at sign-in,
//! for a random session id carried in a cookie. The table lives in memory
//! (sessions end when the server restarts), is bounded (the least recently
//! used session is ended to make room) and keyed by the SHA-256 of the
//! session id, so the table never holds a cookie value. A session holds no
//! key: only the user id, the hash of the key the user had at sign-in (the
//! session ends once it is no longer the user's current key) and its last
//! four characters, for the masked display.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "tijori_session";

/// How long a key shown once (after create or regenerate) waits in the
/// session for the page that shows it.
const FLASH_TTL: Duration = Duration::from_secs(120);

/// What a session knows.
#[derive(Clone)]
pub struct Session {
    pub user_id: domain::UserId,
    /// `User::key_hash` when the session began (or its own key was
    /// regenerated from it).
    pub key_hash: String,
    /// Last four characters of that key, for `tjk_…abcd`.
    pub key_last4: String,
    /// The CSRF token of every form of this session.
    pub csrf: String,
    last_seen: Instant,
    /// A key to show exactly once, with what it belongs to.
    flash: Option<Flash>,
}

/// A key waiting to be shown once.
#[derive(Clone)]
pub struct Flash {
    /// Whose key: the user's own (`None`) or a sub-user's.
    pub user: Option<(String, String)>,
    pub key: String,
    /// A webhook signing secret (after a rotation), not an API key.
    pub secret: bool,
    made: Instant,
}

pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
    idle: Duration,
    max: usize,
}

/// 32 random bytes, hex.
pub fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn table_key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Compares two strings in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn new(idle: Duration, max: usize) -> Sessions {
        Sessions {
            table: Mutex::new(HashMap::new()),
            idle,
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A poisoned lock only means a panic elsewhere mid-update of a map
        // whose entries are replaced whole: the map is still sound.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session; answers its id (the cookie value), or `None` when
    /// the system's random source fails.
    pub fn create(
        &self,
        user_id: domain::UserId,
        key_hash: String,
        key_last4: String,
    ) -> Option<String> {
        let id = random_token()?;
        let csrf = random_token()?;
        let now = Instant::now();
        let mut table = self.lock();
        if table.len() >= self.max {
            let idle = self.idle;
            table.retain(|_, s| now.duration_since(s.last_seen) < idle);
        }
        if table.len() >= self.max {
            let oldest = table
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                table.remove(&k);
            }
        }
        table.insert(
            table_key(&id),
            Session {
                user_id,
                key_hash,
                key_last4,
                csrf,
                last_seen: now,
                flash: None,
            },
        );
        Some(id)
    }

    /// The live session of cookie value `id`, touched; an idle one is ended.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = table_key(id);
        let mut table = self.lock();
        let now = Instant::now();
        let session = table.get_mut(&key)?;
        if now.duration_since(session.last_seen) >= self.idle {
            table.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    pub fn end(&self, id: &str) {
        self.lock().remove(&table_key(id));
    }

    /// Ends every session of `user` whose key is not `current_hash`.
    pub fn end_stale(&self, user: &domain::UserId, current_hash: &str) {
        self.lock()
            .retain(|_, s| s.user_id != *user || s.key_hash == current_hash);
    }

    /// After the session's own key was regenerated from it: binds it to
    /// the new key.
    pub fn rebind(&self, id: &str, key_hash: String, key_last4: String) {
        if let Some(s) = self.lock().get_mut(&table_key(id)) {
            s.key_hash = key_hash;
            s.key_last4 = key_last4;
        }
    }

    /// Keeps `flash` for the next page that shows it.
    pub fn set_flash(&self, id: &str, user: Option<(String, String)>, key: String) {
        if let Some(s) = self.lock().get_mut(&table_key(id)) {
            s.flash = Some(Flash {
                user,
                key,
                secret: false,
                made: Instant::now(),
            });
        }
    }

    /// Keeps a new webhook signing secret for the next profile page.
    pub fn set_secret_flash(&self, id: &str, secret: String) {
        if let Some(s) = self.lock().get_mut(&table_key(id)) {
            s.flash = Some(Flash {
                user: None,
                key: secret,
                secret: true,
                made: Instant::now(),
            });
        }
    }

    /// Takes the waiting key, if any (and if recent): it is shown once.
    pub fn take_flash(&self, id: &str) -> Option<Flash> {
        let flash = self.lock().get_mut(&table_key(id))?.flash.take()?;
        (flash.made.elapsed() < FLASH_TTL).then_some(flash)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> domain::UserId {
        domain::UserId::new()
    }

    #[test]
    fn table_is_bounded_and_ends_the_least_recently_used() {
        let s = Sessions::new(Duration::from_secs(60), 2);
        let a = s
            .create(user(), "h".into(), "abcd".into())
            .unwrap_or_default();
        std::thread::sleep(Duration::from_millis(2));
        let b = s
            .create(user(), "h".into(), "abcd".into())
            .unwrap_or_default();
        std::thread::sleep(Duration::from_millis(2));
        assert!(s.get(&a).is_some()); // a is now the most recent
        let c = s
            .create(user(), "h".into(), "abcd".into())
            .unwrap_or_default();
        assert_eq!(s.len(), 2);
        assert!(s.get(&b).is_none());
        assert!(s.get(&a).is_some() && s.get(&c).is_some());
    }

    #[test]
    fn idle_sessions_end_and_flash_is_shown_once() {
        let s = Sessions::new(Duration::from_millis(30), 10);
        let a = s
            .create(user(), "h".into(), "abcd".into())
            .unwrap_or_default();
        s.set_flash(&a, None, "tjk_x".into());
        assert!(s.take_flash(&a).is_some());
        assert!(s.take_flash(&a).is_none());
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.get(&a).is_none());
        assert!(s.is_empty());
    }

    #[test]
    fn stale_keys_end_sessions_of_that_user_only() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let (u, v) = (user(), user());
        let a = s.create(u, "old".into(), "abcd".into()).unwrap_or_default();
        let b = s.create(u, "new".into(), "abcd".into()).unwrap_or_default();
        let c = s.create(v, "old".into(), "abcd".into()).unwrap_or_default();
        s.end_stale(&u, "new");
        assert!(s.get(&a).is_none());
        assert!(s.get(&b).is_some() && s.get(&c).is_some());
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
