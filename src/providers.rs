//! One VM's state for each provider (authorization server): its key set and version, its
//! fetch in flight and the requests waiting for its keys. Indexed like
//! `FilterConfig::providers`; a provider's keys never judge another's tokens, and a fetch or a
//! failure of one never settles another's waiters.

use std::rc::Rc;

use crate::authorize::ProviderKeys;
use crate::jwks_sync::DiscoveryForm;
use crate::keys::KeySet;
use crate::waiting::WaitingRoom;

/// What the callout of a fetch in flight asks for: with discovery, the issuer's metadata
/// first, then the key set it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchStage {
    Discovery(DiscoveryForm),
    Keys { path: String },
}

/// One provider's state in this VM.
#[derive(Debug)]
pub struct ProviderState {
    pub keys: Option<Rc<KeySet>>,
    /// The version of the shared key-set record `keys` came from (0: none).
    pub version: u64,
    /// Requests waiting for this provider's keys (a first set, or a refetch for a `kid`).
    pub waiting: WaitingRoom,
    /// The token of this provider's key-set callout in flight from this VM.
    pub fetch_token: Option<u32>,
    /// What that callout asks for.
    pub fetch_stage: FetchStage,
}

impl ProviderState {
    fn new() -> ProviderState {
        ProviderState {
            keys: None,
            version: 0,
            waiting: WaitingRoom::default(),
            fetch_token: None,
            fetch_stage: FetchStage::Keys { path: String::new() },
        }
    }
}

/// Every provider's state, by index.
#[derive(Debug)]
pub struct Providers {
    states: Vec<ProviderState>,
}

impl Providers {
    pub fn new(count: usize) -> Providers {
        Providers { states: (0..count).map(|_| ProviderState::new()).collect() }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    pub fn get(&self, provider: usize) -> Option<&ProviderState> {
        self.states.get(provider)
    }

    pub fn get_mut(&mut self, provider: usize) -> Option<&mut ProviderState> {
        self.states.get_mut(provider)
    }

    /// Whether the request waits for any provider's keys.
    pub fn is_waiting(&self, context_id: u32) -> bool {
        self.states.iter().any(|s| s.waiting.contains(context_id))
    }

    /// The request went away: it must never be resumed, whichever provider it waited for.
    pub fn leave(&mut self, context_id: u32) {
        for state in &mut self.states {
            state.waiting.leave(context_id);
        }
    }

    /// The provider whose callout has this token, which is no longer in flight.
    pub fn take_fetch(&mut self, token: u32) -> Option<usize> {
        let index = self.states.iter().position(|s| s.fetch_token == Some(token))?;
        if let Some(state) = self.states.get_mut(index) {
            state.fetch_token = None;
        }
        Some(index)
    }
}

impl ProviderKeys for Providers {
    fn keys(&self, provider: usize) -> Option<&KeySet> {
        self.states.get(provider).and_then(|s| s.keys.as_deref())
    }

    fn any(&self) -> bool {
        self.states.iter().any(|s| s.keys.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorize::WaitReason;
    use crate::waiting::Waiter;

    #[test]
    fn waiting_and_fetches_are_per_provider() {
        let mut providers = Providers::new(2);
        let waiter = Waiter { since_ms: 0, reason: WaitReason::NoKeys, version_at_wait: 0 };
        providers.get_mut(1).unwrap().waiting.park(7, waiter);
        assert!(providers.is_waiting(7));
        assert!(!providers.get(0).unwrap().waiting.contains(7));
        providers.leave(7);
        assert!(!providers.is_waiting(7));
        providers.get_mut(1).unwrap().fetch_token = Some(3);
        assert_eq!(providers.take_fetch(4), None);
        assert_eq!(providers.take_fetch(3), Some(1));
        assert_eq!(providers.take_fetch(3), None);
        let keys = KeySet::parse(crate::testkeys::keycloak_jwks().to_string().as_bytes()).unwrap();
        providers.get_mut(1).unwrap().keys = Some(Rc::new(keys));
        assert!(providers.any() && providers.keys(0).is_none() && providers.keys(1).is_some());
    }
}
