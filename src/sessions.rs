//! Sessions bound to their user: an `Mcp-Session-Id` the server hands out is recorded with a
//! digest of the token's (`iss`, `sub`), and a later request presenting that session id with
//! another subject's token is refused. A session id is not authentication (MCP security best
//! practices): without this, a valid token for user B plus user A's session id would join A's
//! session.
//!
//! The table lives in the host's shared data, so every worker VM of the process sees it. The
//! host cannot delete or list keys, so it is a fixed number of slots: a session id hashes to a
//! set of [`WAYS`] neighbouring slots; a new session takes an empty, idle-expired or else the
//! least recently seen slot of its set. The table is bounded by `max_sessions`; a session
//! pushed out of it is unknown again, and unknown session ids pass (the server judges them).

use ring::digest;

use crate::jwks_sync::SharedStore;

/// Slots a session id may occupy.
pub const WAYS: u64 = 4;
/// A session's `last_seen` is rewritten at most this often per idle period (a fraction of it),
/// so a busy session does not cost a shared-data write on every request.
const TOUCH_FRACTION: u64 = 8;

/// A digest of an identity or a session id: the first 16 bytes of its SHA-256.
pub type Digest16 = [u8; 16];

pub fn digest16(parts: &[&[u8]]) -> Digest16 {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(ctx.finish().as_ref().get(..16).unwrap_or(&[0; 16]));
    out
}

/// The subject a token speaks for: a digest of its issuer and subject.
pub fn subject_digest(iss: &str, sub: &str) -> Digest16 {
    digest16(&[b"subject", iss.as_bytes(), sub.as_bytes()])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    pub max_sessions: u64,
    pub idle_timeout_ms: u64,
}

/// What a request's session id says about its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCheck {
    /// Not in the table (never seen, expired or pushed out): the server judges it.
    Unknown,
    /// Bound to this subject.
    Same,
    /// Bound to another subject: refuse.
    OtherSubject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    session: Digest16,
    subject: Digest16,
    last_seen_ms: u64,
}

impl Slot {
    const LEN: usize = 40;

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Slot::LEN);
        out.extend_from_slice(&self.session);
        out.extend_from_slice(&self.subject);
        out.extend_from_slice(&self.last_seen_ms.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Slot> {
        let session: Digest16 = bytes.get(..16)?.try_into().ok()?;
        let subject: Digest16 = bytes.get(16..32)?.try_into().ok()?;
        let last_seen: [u8; 8] = bytes.get(32..40)?.try_into().ok()?;
        Some(Slot { session, subject, last_seen_ms: u64::from_be_bytes(last_seen) })
    }
}

pub struct SessionTable<'a, S: SharedStore> {
    store: &'a S,
    config: SessionConfig,
}

impl<'a, S: SharedStore> SessionTable<'a, S> {
    pub fn new(store: &'a S, config: SessionConfig) -> Self {
        SessionTable { store, config }
    }

    fn key(index: u64) -> String {
        format!("mcp_auth.session.{index}")
    }

    /// The slot indices a session may occupy.
    fn set_of(&self, session: &Digest16) -> impl Iterator<Item = u64> {
        let slots = self.config.max_sessions.max(1);
        let first: [u8; 8] = session.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_default();
        let start = u64::from_be_bytes(first) % slots;
        (0..WAYS.min(slots)).map(move |i| (start + i) % slots)
    }

    fn read(&self, index: u64) -> Result<Option<(Slot, u32)>, String> {
        Ok(self
            .store
            .get(&Self::key(index))?
            .and_then(|(bytes, cas)| Slot::decode(&bytes).map(|slot| (slot, cas))))
    }

    fn live(&self, slot: &Slot, now_ms: u64) -> bool {
        now_ms.saturating_sub(slot.last_seen_ms) < self.config.idle_timeout_ms
    }

    /// Checks a request's session id against the subject of its token, and keeps a live
    /// session's idle clock running.
    pub fn check(
        &self,
        session_id: &str,
        subject: &Digest16,
        now_ms: u64,
    ) -> Result<SessionCheck, String> {
        let session = digest16(&[b"session", session_id.as_bytes()]);
        for index in self.set_of(&session) {
            let Some((slot, cas)) = self.read(index)? else { continue };
            if slot.session != session || !self.live(&slot, now_ms) {
                continue;
            }
            if slot.subject != *subject {
                return Ok(SessionCheck::OtherSubject);
            }
            let touch_after = self.config.idle_timeout_ms / TOUCH_FRACTION;
            if now_ms.saturating_sub(slot.last_seen_ms) > touch_after {
                let touched = Slot { last_seen_ms: now_ms, ..slot };
                // Losing a race only means another request touched it.
                self.store.set(&Self::key(index), &touched.encode(), Some(cas))?;
            }
            return Ok(SessionCheck::Same);
        }
        Ok(SessionCheck::Unknown)
    }

    /// Records a session id the server just handed out, bound to `subject`.
    pub fn record(&self, session_id: &str, subject: &Digest16, now_ms: u64) -> Result<(), String> {
        let session = digest16(&[b"session", session_id.as_bytes()]);
        let fresh = Slot { session, subject: *subject, last_seen_ms: now_ms };
        for _ in 0..WAYS {
            // The slot to take: this session's own, else an empty or expired one, else the one
            // seen least recently.
            let mut best: Option<(u64, Option<u32>, u64)> = None; // (index, cas, rank)
            for index in self.set_of(&session) {
                let (rank, cas) = match self.read(index)? {
                    None => (0, None),
                    // A live binding is never handed to another subject.
                    Some((slot, _))
                        if slot.session == session
                            && slot.subject != *subject
                            && self.live(&slot, now_ms) =>
                    {
                        return Ok(());
                    }
                    Some((slot, cas)) if slot.session == session => (0, Some(cas)),
                    Some((slot, cas)) if !self.live(&slot, now_ms) => (1, Some(cas)),
                    Some((slot, cas)) => (2 + slot.last_seen_ms, Some(cas)),
                };
                if best.is_none_or(|(_, _, r)| rank < r) {
                    best = Some((index, cas, rank));
                }
                if rank == 0 {
                    break;
                }
            }
            let Some((index, cas, _)) = best else { return Ok(()) };
            if self.store.set(&Self::key(index), &fresh.encode(), cas)? {
                return Ok(());
            }
        }
        Err("could not record a session binding: shared data busy".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::MemoryHost;

    const CONFIG: SessionConfig = SessionConfig { max_sessions: 64, idle_timeout_ms: 60_000 };

    #[test]
    fn a_session_is_bound_to_its_subject() {
        let store = MemoryHost::new(0);
        let table = SessionTable::new(&store, CONFIG);
        let alice = subject_digest("https://idp", "alice");
        let bob = subject_digest("https://idp", "bob");
        assert_eq!(table.check("s-1", &alice, 0).unwrap(), SessionCheck::Unknown);
        table.record("s-1", &alice, 0).unwrap();
        assert_eq!(table.check("s-1", &alice, 1000).unwrap(), SessionCheck::Same);
        assert_eq!(table.check("s-1", &bob, 1000).unwrap(), SessionCheck::OtherSubject);
        assert_eq!(table.check("s-2", &bob, 1000).unwrap(), SessionCheck::Unknown);
        // Another subject cannot take over a live binding by recording it again.
        table.record("s-1", &bob, 2000).unwrap();
        assert_eq!(table.check("s-1", &bob, 2000).unwrap(), SessionCheck::OtherSubject);
        // The same sub from another issuer is another subject.
        let other_idp = subject_digest("https://other", "alice");
        assert_eq!(table.check("s-1", &other_idp, 1000).unwrap(), SessionCheck::OtherSubject);
    }

    #[test]
    fn an_idle_session_expires_and_use_keeps_it_alive() {
        let store = MemoryHost::new(0);
        let table = SessionTable::new(&store, CONFIG);
        let alice = subject_digest("i", "alice");
        let bob = subject_digest("i", "bob");
        table.record("s", &alice, 0).unwrap();
        // Used every 50 s: never idle for 60 s.
        for t in (50_000..=300_000).step_by(50_000) {
            assert_eq!(table.check("s", &alice, t).unwrap(), SessionCheck::Same, "at {t}");
        }
        assert_eq!(table.check("s", &bob, 359_000).unwrap(), SessionCheck::OtherSubject);
        assert_eq!(table.check("s", &bob, 361_000).unwrap(), SessionCheck::Unknown);
    }

    #[test]
    fn the_table_is_bounded_and_keeps_recent_sessions() {
        let store = MemoryHost::new(0);
        let config = SessionConfig { max_sessions: 8, idle_timeout_ms: 1 << 40 };
        let table = SessionTable::new(&store, config);
        let alice = subject_digest("i", "alice");
        let bob = subject_digest("i", "bob");
        for n in 0..100u64 {
            table.record(&format!("old-{n}"), &alice, n).unwrap();
        }
        table.record("new", &alice, 1000).unwrap();
        assert_eq!(table.check("new", &bob, 1001).unwrap(), SessionCheck::OtherSubject);
        assert!(store.store.borrow().len() <= 8);
    }

    #[test]
    fn a_torn_slot_reads_as_empty() {
        let store = MemoryHost::new(0);
        let table = SessionTable::new(&store, CONFIG);
        let alice = subject_digest("i", "alice");
        for i in 0..CONFIG.max_sessions {
            store.set(&SessionTable::<MemoryHost>::key(i), b"junk", None).unwrap();
        }
        assert_eq!(table.check("s", &alice, 0).unwrap(), SessionCheck::Unknown);
        table.record("s", &alice, 0).unwrap();
        assert_eq!(table.check("s", &alice, 0).unwrap(), SessionCheck::Same);
    }
}
