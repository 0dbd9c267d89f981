//! The filter's counters, as Envoy's stats structs do it: one enum, an array indexed by it,
//! so a reason without a counter cannot compile and a name cannot be misspelt. Envoy shows
//! them as `wasmcustom.mcp_auth.<name>`.
//!
//! Increments are kept in the VM and handed to the host on each tick, which saves a hostcall
//! on every request.

use crate::error::{DenyReason, TokenError};
use crate::host::Host;
use crate::mcp::policy::McpOutcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Allowed,
    MetadataServed,
    JwksFetchOk,
    JwksFetchFailed,
    Denied(DenyReason),
    Rejected(TokenError),
    /// The `mcp` policy's verdict on a POST to the MCP endpoint.
    Mcp(McpOutcome),
    /// Items the `mcp` policy removed from list responses.
    McpListFiltered,
    /// RSA keys of a fetched key set outside `jwks.rsa_key_policy` (skipped).
    KeyRefused,
}

const PLAIN: usize = 4;
const MCP: usize = 5;
const LAST: usize = PLAIN + DenyReason::COUNT + TokenError::COUNT + MCP;

impl Counter {
    pub const COUNT: usize = LAST + 1;

    pub fn index(self) -> usize {
        match self {
            Counter::Allowed => 0,
            Counter::MetadataServed => 1,
            Counter::JwksFetchOk => 2,
            Counter::JwksFetchFailed => 3,
            Counter::Denied(reason) => PLAIN + reason.index(),
            Counter::Rejected(error) => PLAIN + DenyReason::COUNT + error.index(),
            Counter::Mcp(outcome) => {
                PLAIN
                    + DenyReason::COUNT
                    + TokenError::COUNT
                    + match outcome {
                        McpOutcome::Allowed => 0,
                        McpOutcome::DeniedScope => 1,
                        McpOutcome::DeniedRule => 2,
                        McpOutcome::BadBody => 3,
                    }
            }
            Counter::McpListFiltered => PLAIN + DenyReason::COUNT + TokenError::COUNT + 4,
            Counter::KeyRefused => LAST,
        }
    }

    /// Every counter, in index order.
    pub fn all() -> impl Iterator<Item = Counter> {
        [Counter::Allowed, Counter::MetadataServed, Counter::JwksFetchOk, Counter::JwksFetchFailed]
            .into_iter()
            .chain(DenyReason::ALL.into_iter().map(Counter::Denied))
            .chain(TokenError::ALL.into_iter().map(Counter::Rejected))
            .chain(
                [
                    McpOutcome::Allowed,
                    McpOutcome::DeniedScope,
                    McpOutcome::DeniedRule,
                    McpOutcome::BadBody,
                ]
                .into_iter()
                .map(Counter::Mcp),
            )
            .chain([Counter::McpListFiltered, Counter::KeyRefused])
    }

    /// The full stats name.
    pub fn name(self) -> String {
        match self {
            Counter::Allowed => "mcp_auth.allowed".into(),
            Counter::MetadataServed => "mcp_auth.metadata_served".into(),
            Counter::JwksFetchOk => "mcp_auth.jwks_fetch.ok".into(),
            Counter::JwksFetchFailed => "mcp_auth.jwks_fetch.failed".into(),
            Counter::Denied(reason) => format!("mcp_auth.denied.{}", reason.reason()),
            Counter::Rejected(error) => format!("mcp_auth.denied.{}", error.reason()),
            Counter::Mcp(outcome) => format!("mcp_auth.{}", outcome.counter()),
            Counter::McpListFiltered => "mcp_auth.mcp.list_filtered".into(),
            Counter::KeyRefused => "mcp_auth.jwks.key_refused".into(),
        }
    }
}

/// The host's ids of the counters and the increments not yet handed over.
pub struct Stats {
    ids: [Option<u32>; Counter::COUNT],
    pending: [u64; Counter::COUNT],
}

impl Stats {
    /// Defines every counter with the host; one the host refuses is logged and not counted.
    pub fn define(host: &impl Host) -> Stats {
        let mut ids = [None; Counter::COUNT];
        for counter in Counter::all() {
            let name = counter.name();
            let id = host.define_counter(&name);
            if id.is_none() {
                log::warn!("cannot define metric {name}");
            }
            if let Some(slot) = ids.get_mut(counter.index()) {
                *slot = id;
            }
        }
        Stats { ids, pending: [0; Counter::COUNT] }
    }

    pub fn count(&mut self, counter: Counter) {
        self.add(counter, 1);
    }

    pub fn add(&mut self, counter: Counter, n: u64) {
        if let Some(pending) = self.pending.get_mut(counter.index()) {
            *pending += n;
        }
    }

    pub fn flush(&mut self, host: &impl Host) {
        for (id, pending) in self.ids.iter().zip(self.pending.iter_mut()) {
            if let (Some(id), true) = (id, *pending > 0) {
                host.add_to_counter(*id, *pending);
                *pending = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::MemoryHost;

    #[test]
    fn every_counter_has_its_own_slot_and_name() {
        let all: Vec<Counter> = Counter::all().collect();
        assert_eq!(all.len(), Counter::COUNT);
        for (i, c) in all.iter().enumerate() {
            assert_eq!(c.index(), i, "{c:?}");
        }
        let mut names: Vec<String> = all.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Counter::COUNT);
    }

    #[test]
    fn counts_reach_the_host_on_flush() {
        let host = MemoryHost::new(0);
        let mut stats = Stats::define(&host);
        stats.count(Counter::Allowed);
        stats.count(Counter::Allowed);
        stats.count(Counter::Rejected(TokenError::Malformed("x")));
        assert_eq!(host.counter("mcp_auth.allowed"), 0);
        stats.flush(&host);
        assert_eq!(host.counter("mcp_auth.allowed"), 2);
        assert_eq!(host.counter("mcp_auth.denied.malformed_token"), 1);
        stats.flush(&host);
        assert_eq!(host.counter("mcp_auth.allowed"), 2);
    }
}
