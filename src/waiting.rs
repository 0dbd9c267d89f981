//! Requests that wait for signing keys: when to park one, when it is due again, when it has
//! waited long enough. Pure: the worker asks, then resumes or answers what this returns.
//!
//! A request waits in two cases ([`WaitReason`]): no key set was loaded yet, or its token
//! names a `kid` the set lacks and one refetch may bring it. Either way it waits at most the
//! key-set fetch timeout, and it is answered as soon as the fetch it waits for ends.

use std::collections::BTreeMap;

use crate::authorize::WaitReason;
use crate::jwks_sync::Claim;

/// A parked request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    pub since_ms: u64,
    pub reason: WaitReason,
    /// The key-set version this VM had when the request started waiting.
    pub version_at_wait: u64,
}

impl Waiter {
    /// Whether a decision made again for this request may still wait for a refetch: a request
    /// that waited for a first key set may, one that waited for its `kid` had its refetch.
    pub fn may_refetch(&self) -> bool {
        self.reason == WaitReason::NoKeys
    }

    fn timed_out(&self, now_ms: u64, timeout_ms: u64) -> bool {
        now_ms.saturating_sub(self.since_ms) >= timeout_ms
    }
}

/// What to do with a request whose decision is "wait", given this VM's fetch claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitPlan {
    /// This VM claimed the fetch: start it, and park the request.
    FetchAndPark,
    /// Another fetch is in flight: park.
    Park,
    /// No fetch is due. Another VM may have published keys this VM has not picked up: install
    /// them and decide again. Without any, answer 503 when the next fetch is further away than
    /// the request may wait (`Some(retry_after_s)`), else park.
    InstallPublished { unavailable_retry_after_s: Option<u64> },
    /// Decide again now (no refetch is possible).
    DecideAgain { may_refetch: bool },
}

/// The plan for a waiting request. `claim` is `None` when the shared record could not be
/// used (the caller logged why).
pub fn plan(reason: WaitReason, claim: Option<Claim>, now_ms: u64, timeout_ms: u64) -> WaitPlan {
    match claim {
        Some(Claim::Started) => WaitPlan::FetchAndPark,
        Some(Claim::Busy) => WaitPlan::Park,
        Some(Claim::NotDue { next_fetch_ms }) => WaitPlan::InstallPublished {
            unavailable_retry_after_s: (next_fetch_ms > now_ms.saturating_add(timeout_ms))
                .then(|| (next_fetch_ms - now_ms).div_ceil(1000)),
        },
        Some(Claim::RateLimited) => WaitPlan::DecideAgain { may_refetch: false },
        // Without the shared record an unknown `kid` cannot be refetched: judge it now. A
        // request with no keys at all can only wait for the tick to try again.
        None if reason == WaitReason::UnknownKid => WaitPlan::DecideAgain { may_refetch: false },
        None => WaitPlan::Park,
    }
}

/// What a due request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Still no key set: 503.
    Unavailable,
    /// Decide it again with the keys there are.
    DecideAgain { may_refetch: bool },
}

pub fn resolve(waiter: &Waiter, has_keys: bool) -> Resolution {
    if has_keys {
        Resolution::DecideAgain { may_refetch: waiter.may_refetch() }
    } else {
        Resolution::Unavailable
    }
}

/// The state of the shared key-set fetch, as the tick sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchState {
    /// A fetch is in flight somewhere in the process.
    pub fetching: bool,
    /// When the last fetch failed (0: never).
    pub last_failed_ms: u64,
}

/// The requests of one VM that wait, by HTTP context id.
#[derive(Debug, Default)]
pub struct WaitingRoom {
    waiters: BTreeMap<u32, Waiter>,
}

impl WaitingRoom {
    pub fn park(&mut self, context_id: u32, waiter: Waiter) {
        self.waiters.insert(context_id, waiter);
    }

    /// The request went away: it must never be resumed.
    pub fn leave(&mut self, context_id: u32) -> Option<Waiter> {
        self.waiters.remove(&context_id)
    }

    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    pub fn contains(&self, context_id: u32) -> bool {
        self.waiters.contains_key(&context_id)
    }

    /// After keys were installed or a fetch succeeded: every request is due, except one that
    /// waits for a first key set, has seen no new version and has time left.
    pub fn due_after_keys(
        &mut self,
        now_ms: u64,
        version: u64,
        timeout_ms: u64,
    ) -> Vec<(u32, Waiter)> {
        self.take_where(|w| {
            let progressed = version > w.version_at_wait;
            progressed || w.timed_out(now_ms, timeout_ms) || w.reason == WaitReason::UnknownKid
        })
    }

    /// On a tick or after a failed fetch: requests that waited too long, unknown-`kid`
    /// requests whose refetch is over, and first-key-set requests whose fetch failed after
    /// they started waiting.
    pub fn due_on_tick(
        &mut self,
        now_ms: u64,
        timeout_ms: u64,
        fetch: FetchState,
    ) -> Vec<(u32, Waiter)> {
        self.take_where(|w| {
            w.timed_out(now_ms, timeout_ms)
                || (w.reason == WaitReason::UnknownKid && !fetch.fetching)
                || (w.reason == WaitReason::NoKeys
                    && !fetch.fetching
                    && fetch.last_failed_ms >= w.since_ms)
        })
    }

    fn take_where(&mut self, due: impl Fn(&Waiter) -> bool) -> Vec<(u32, Waiter)> {
        let ids: Vec<u32> =
            self.waiters.iter().filter(|(_, w)| due(w)).map(|(id, _)| *id).collect();
        ids.into_iter().filter_map(|id| self.waiters.remove(&id).map(|w| (id, w))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: u64 = 5000;

    fn waiter(since_ms: u64, reason: WaitReason, version_at_wait: u64) -> Waiter {
        Waiter { since_ms, reason, version_at_wait }
    }

    #[test]
    fn plan_follows_the_claim() {
        use WaitReason::*;
        assert_eq!(plan(NoKeys, Some(Claim::Started), 0, TIMEOUT), WaitPlan::FetchAndPark);
        assert_eq!(plan(UnknownKid, Some(Claim::Busy), 0, TIMEOUT), WaitPlan::Park);
        assert_eq!(
            plan(UnknownKid, Some(Claim::RateLimited), 0, TIMEOUT),
            WaitPlan::DecideAgain { may_refetch: false }
        );
        assert_eq!(
            plan(UnknownKid, None, 0, TIMEOUT),
            WaitPlan::DecideAgain { may_refetch: false }
        );
        assert_eq!(plan(NoKeys, None, 0, TIMEOUT), WaitPlan::Park);
    }

    #[test]
    fn not_due_answers_503_only_beyond_the_timeout() {
        let near = plan(
            WaitReason::NoKeys,
            Some(Claim::NotDue { next_fetch_ms: 1000 + TIMEOUT }),
            1000,
            TIMEOUT,
        );
        assert_eq!(near, WaitPlan::InstallPublished { unavailable_retry_after_s: None });
        let far = plan(
            WaitReason::NoKeys,
            Some(Claim::NotDue { next_fetch_ms: 1000 + 30_500 }),
            1000,
            TIMEOUT,
        );
        assert_eq!(far, WaitPlan::InstallPublished { unavailable_retry_after_s: Some(31) });
    }

    #[test]
    fn keys_release_everyone_but_first_set_waiters_without_news() {
        let mut room = WaitingRoom::default();
        room.park(1, waiter(0, WaitReason::NoKeys, 0));
        room.park(2, waiter(0, WaitReason::UnknownKid, 3));
        room.park(3, waiter(0, WaitReason::NoKeys, 3));
        // Version 3 is what requests 2 and 3 saw: request 1 progressed, 3 did not.
        let due: Vec<u32> =
            room.due_after_keys(100, 3, TIMEOUT).into_iter().map(|(id, _)| id).collect();
        assert_eq!(due, vec![1, 2]);
        assert!(room.contains(3));
        // Its time runs out.
        let due: Vec<u32> =
            room.due_after_keys(TIMEOUT, 3, TIMEOUT).into_iter().map(|(id, _)| id).collect();
        assert_eq!(due, vec![3]);
        assert!(room.is_empty());
    }

    #[test]
    fn tick_releases_timeouts_ended_refetches_and_failed_first_fetches() {
        let mut room = WaitingRoom::default();
        room.park(1, waiter(1000, WaitReason::NoKeys, 0));
        room.park(2, waiter(1000, WaitReason::UnknownKid, 1));
        let fetching = FetchState { fetching: true, last_failed_ms: 0 };
        assert!(room.due_on_tick(2000, TIMEOUT, fetching).is_empty());
        // The refetch ended (without the kid): request 2 is judged now.
        let idle = FetchState { fetching: false, last_failed_ms: 0 };
        assert_eq!(room.due_on_tick(2000, TIMEOUT, idle).len(), 1);
        assert!(room.contains(1));
        // A failure before it started waiting does not count; one after it does.
        let old_failure = FetchState { fetching: false, last_failed_ms: 999 };
        assert!(room.due_on_tick(2000, TIMEOUT, old_failure).is_empty());
        let failed = FetchState { fetching: false, last_failed_ms: 1500 };
        assert_eq!(room.due_on_tick(2000, TIMEOUT, failed).len(), 1);
        assert!(room.is_empty());
    }

    #[test]
    fn timeout_releases_any_waiter() {
        let mut room = WaitingRoom::default();
        room.park(7, waiter(0, WaitReason::NoKeys, 0));
        let fetching = FetchState { fetching: true, last_failed_ms: 0 };
        assert!(room.due_on_tick(TIMEOUT - 1, TIMEOUT, fetching).is_empty());
        assert_eq!(room.due_on_tick(TIMEOUT, TIMEOUT, fetching).len(), 1);
    }

    #[test]
    fn a_request_that_left_is_never_due() {
        let mut room = WaitingRoom::default();
        room.park(4, waiter(0, WaitReason::UnknownKid, 0));
        assert!(room.leave(4).is_some());
        assert!(room.due_on_tick(u64::MAX, TIMEOUT, FetchState::default()).is_empty());
        assert!(room.leave(4).is_none());
    }

    #[test]
    fn resolution_needs_keys() {
        let w = waiter(0, WaitReason::UnknownKid, 0);
        assert_eq!(resolve(&w, false), Resolution::Unavailable);
        assert_eq!(resolve(&w, true), Resolution::DecideAgain { may_refetch: false });
        let w = waiter(0, WaitReason::NoKeys, 0);
        assert_eq!(resolve(&w, true), Resolution::DecideAgain { may_refetch: true });
    }
}
