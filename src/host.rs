//! What the filter needs from its host, as a trait: implemented once over proxy-wasm in
//! [`filter`](crate) (the wasm glue) and once in memory ([`MemoryHost`]) so that the
//! request and key-fetch state machines of [`worker`](crate::worker) are tested without Envoy.
//!
//! Every call returns what happened instead of panicking: a host failure is the caller's to
//! judge (usually: log it and fail closed). Logging goes through the `log` facade, which the
//! proxy-wasm SDK routes to the host and tests leave silent.

use std::borrow::Cow;

use crate::jwks_sync::SharedStore;
use crate::response::LocalResponse;

/// The host operations of one VM. Request-scoped calls act on the *effective* context: the
/// request whose callback is running, or the one chosen by [`Host::set_effective_context`].
pub trait Host: SharedStore {
    /// Milliseconds since the epoch; `None` when the host cannot tell.
    fn now_ms(&self) -> Option<u64>;

    /// Every request header, in one host call; `None` when the host cannot hand them over.
    fn request_headers(&self) -> Option<RequestHeaders>;
    /// Sets (`Some`) or removes (`None`) a request header.
    fn set_request_header(&self, name: &str, value: Option<&str>);
    /// Up to `size` bytes of the request body buffered so far.
    fn request_body(&self, size: usize) -> Option<Vec<u8>>;

    /// A response header as text; `None` when absent.
    fn response_header(&self, name: &str) -> Option<String>;
    /// Sets (`Some`) or removes (`None`) a response header.
    fn set_response_header(&self, name: &str, value: Option<&str>);
    /// Up to `size` bytes of the response body the host holds now (this chunk, or all of it
    /// once buffered).
    fn response_body(&self, size: usize) -> Option<Vec<u8>>;
    /// Replaces the first `size` bytes of the response body the host holds with `body`.
    fn set_response_body(&self, size: usize, body: &[u8]);

    /// Answers the request with a response of the filter's own.
    fn send_response(&self, response: &LocalResponse);
    /// Makes `context_id` the effective request; false when it is gone.
    fn set_effective_context(&self, context_id: u32) -> bool;
    /// Lets the effective request, paused earlier, continue upstream.
    fn resume_request(&self) -> bool;

    /// Sends an HTTP request through `cluster`; returns the call's token.
    fn dispatch_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, String>;
    /// A header of the response to the call being delivered.
    fn call_response_header(&self, name: &str) -> Option<String>;
    /// The body of the response to the call being delivered.
    fn call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, String>;

    /// Defines a counter named `name`; `None` when the host refuses.
    fn define_counter(&self, name: &str) -> Option<u32>;
    fn add_to_counter(&self, id: u32, delta: u64);
}

/// A header value as text: the bytes themselves when they are UTF-8 (no copy: this is the
/// kilobyte-long token on every request), else with invalid sequences replaced by U+FFFD.
pub fn utf8_or_replaced(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A request's headers as the host hands them over in one call: the proxy-wasm pair
/// serialisation (a count, each pair's name and value lengths, then each name and value
/// followed by a NUL), checked once when received and looked up in place.
///
/// One call instead of one per header: every host call is a crossing into Envoy and, for a
/// value, back into the VM to allocate it. The whole map also tells whether a header is
/// repeated, which a single read (the first copy only) cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeaders {
    bytes: Vec<u8>,
    /// Where each pair's name and value lie in `bytes`: found once, by [`Self::parse`].
    spans: Vec<PairSpan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PairSpan {
    name: (usize, usize),
    value: (usize, usize),
}

/// What a request carries under one header name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lookup<'a> {
    /// The first value.
    pub first: Option<&'a [u8]>,
    /// How many values there are.
    pub count: usize,
}

impl<'a> Lookup<'a> {
    /// The first value as text (invalid UTF-8 replaced by U+FFFD, without a copy otherwise).
    pub fn text(&self) -> Option<Cow<'a, str>> {
        self.first.map(decode_leniently)
    }

    pub fn is_repeated(&self) -> bool {
        self.count > 1
    }
}

impl RequestHeaders {
    /// Checks the serialisation; `None` when it is malformed (a host fault: the caller fails
    /// closed rather than judge a request by what it could read of it).
    pub fn parse(bytes: Vec<u8>) -> Option<RequestHeaders> {
        if bytes.is_empty() {
            return Some(RequestHeaders { bytes, spans: Vec::new() });
        }
        let count = usize::try_from(read_u32(&bytes, 0)?).ok()?;
        let mut data = count.checked_mul(8)?.checked_add(4)?;
        if data > bytes.len() {
            return None;
        }
        let mut spans = Vec::with_capacity(count);
        for n in 0..count {
            let mut part = |half: usize| {
                let len = usize::try_from(read_u32(&bytes, 4 + n * 8 + half * 4)?).ok()?;
                let (start, end) = (data, data.checked_add(len)?);
                // Each name and value is followed by a NUL.
                if *bytes.get(end)? != 0 {
                    return None;
                }
                data = end + 1;
                Some((start, end))
            };
            spans.push(PairSpan { name: part(0)?, value: part(1)? });
        }
        (data == bytes.len()).then_some(RequestHeaders { bytes, spans })
    }

    /// Serialises `pairs` as a host does.
    pub fn from_pairs<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> RequestHeaders {
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        let mut bytes = len(pairs.len()).to_vec();
        for (name, value) in pairs {
            bytes.extend_from_slice(&len(name.as_ref().len()));
            bytes.extend_from_slice(&len(value.as_ref().len()));
        }
        for (name, value) in pairs {
            for part in [name.as_ref(), value.as_ref()] {
                bytes.extend_from_slice(part);
                bytes.push(0);
            }
        }
        RequestHeaders::parse(bytes)
            .unwrap_or(RequestHeaders { bytes: Vec::new(), spans: Vec::new() })
    }

    /// The serialisation itself.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Each (name, value) pair, in the host's order.
    pub fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let part = |(start, end): (usize, usize)| self.bytes.get(start..end).unwrap_or_default();
        self.spans.iter().map(move |span| (part(span.name), part(span.value)))
    }

    /// The values under `name` (lowercase, as hosts hand names over).
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        let mut found = Lookup::default();
        for (key, value) in self.pairs() {
            if key == name.as_bytes() {
                found.first = found.first.or(Some(value));
                found.count += 1;
            }
        }
        found
    }

    /// Every value under `name` as text.
    pub fn texts(&self, name: &str) -> Vec<Cow<'_, str>> {
        let named = self.pairs().filter(|(key, _)| *key == name.as_bytes());
        named.map(|(_, value)| decode_leniently(value)).collect()
    }
}

/// Bytes from the host (a header value, a response body) as a client decodes them: borrowed
/// when they are UTF-8, else with invalid sequences replaced by U+FFFD. Checked first by
/// `simdutf8` (sixteen bytes at a time with wasm SIMD, where core's `from_utf8` goes a word at a
/// time and `from_utf8_lossy` a byte): a kilobyte of token on every request, a whole list
/// response.
pub fn decode_leniently(bytes: &[u8]) -> Cow<'_, str> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(valid) => Cow::Borrowed(valid),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(word.try_into().ok()?))
}

#[cfg(any(test, feature = "test-fixtures"))]
pub use memory::{Call, MemoryHost};

#[cfg(any(test, feature = "test-fixtures"))]
mod memory {
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    use super::{Host, RequestHeaders};
    use crate::jwks_sync::SharedStore;
    use crate::response::LocalResponse;

    /// The shared key-value store: key to (value, CAS token).
    pub type Store = std::rc::Rc<RefCell<BTreeMap<String, (Vec<u8>, u32)>>>;
    /// Headers and body of a callout's response.
    pub type CallResponse = (Vec<(String, String)>, Vec<u8>);

    /// A dispatched call, as the host saw it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Call {
        pub token: u32,
        pub cluster: String,
        pub path: String,
    }

    /// The state of one request as the host sees it.
    #[derive(Debug, Default, Clone)]
    pub struct Request {
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
        pub sent: Option<LocalResponse>,
        pub response_headers: Vec<(String, String)>,
        /// The response body the host holds (the current chunk, or all buffered chunks).
        pub response_body: Vec<u8>,
        /// How many local responses were sent (more than one is a bug).
        pub sent_count: u32,
        pub resumed: u32,
    }

    /// An in-memory host: requests by context id, a shared store, counters, a settable clock.
    /// Several `MemoryHost`s built with [`MemoryHost::sibling`] share the store, as the VMs of
    /// one Envoy process do.
    #[derive(Default)]
    pub struct MemoryHost {
        pub clock_ms: Cell<Option<u64>>,
        pub requests: RefCell<BTreeMap<u32, Request>>,
        pub effective: Cell<u32>,
        pub store: Store,
        pub calls: RefCell<Vec<Call>>,
        pub next_token: Cell<u32>,
        pub fail_dispatch: Cell<bool>,
        /// The response being delivered to `on_call_response`: headers and body.
        pub call_response: RefCell<CallResponse>,
        pub counters: RefCell<Vec<(String, u64)>>,
        /// Request header edits made (each a host call).
        pub request_header_edits: Cell<u32>,
    }

    impl MemoryHost {
        pub fn new(now_ms: u64) -> MemoryHost {
            let host = MemoryHost::default();
            host.clock_ms.set(Some(now_ms));
            host
        }

        /// Another VM of the same process: same store and clock, its own requests.
        pub fn sibling(&self) -> MemoryHost {
            let mut host = MemoryHost::new(0);
            host.clock_ms.set(self.clock_ms.get());
            host.store.clone_from(&self.store);
            host
        }

        pub fn advance(&self, ms: u64) {
            self.clock_ms.set(self.clock_ms.get().map(|t| t + ms));
        }

        /// Registers a request and makes it the effective one.
        pub fn arrive(&self, id: u32, headers: &[(&str, &str)]) {
            let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            self.requests.borrow_mut().insert(id, Request { headers, ..Request::default() });
            self.effective.set(id);
        }

        pub fn request(&self, id: u32) -> Request {
            self.requests.borrow().get(&id).cloned().unwrap_or_default()
        }

        pub fn header_of(&self, id: u32, name: &str) -> Option<String> {
            self.request(id).headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        }

        /// Sets the request body the host has buffered for request `id`.
        pub fn set_request_body(&self, id: u32, body: &[u8]) {
            if let Some(r) = self.requests.borrow_mut().get_mut(&id) {
                r.body = body.to_vec();
            }
            self.effective.set(id);
        }

        /// The upstream's response headers for request `id` arrive.
        pub fn set_response_headers(&self, id: u32, headers: &[(&str, &str)]) {
            if let Some(r) = self.requests.borrow_mut().get_mut(&id) {
                r.response_headers =
                    headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            }
            self.effective.set(id);
        }

        /// A chunk of the upstream's response body for request `id` arrives (replacing the
        /// last, as a host does when the filter let the last one go).
        pub fn set_response_chunk(&self, id: u32, chunk: &[u8]) {
            if let Some(r) = self.requests.borrow_mut().get_mut(&id) {
                r.response_body = chunk.to_vec();
            }
            self.effective.set(id);
        }

        pub fn respond_to_call(&self, headers: &[(&str, &str)], body: &[u8]) {
            let headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            *self.call_response.borrow_mut() = (headers, body.to_vec());
        }

        /// The request went away (the host forgets it, as Envoy does).
        pub fn depart(&self, id: u32) {
            self.requests.borrow_mut().remove(&id);
        }

        pub fn counter(&self, name: &str) -> u64 {
            self.counters.borrow().iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
        }

        fn with_effective<T>(&self, f: impl FnOnce(&mut Request) -> T) -> Option<T> {
            self.requests.borrow_mut().get_mut(&self.effective.get()).map(f)
        }
    }

    impl SharedStore for MemoryHost {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
            Ok(self.store.borrow().get(key).cloned())
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, String> {
            let mut store = self.store.borrow_mut();
            let current = store.get(key).map_or(0, |(_, c)| *c);
            if cas.is_some_and(|c| c != current) {
                return Ok(false);
            }
            store.insert(key.to_string(), (value.to_vec(), current + 1));
            Ok(true)
        }
    }

    impl Host for MemoryHost {
        fn now_ms(&self) -> Option<u64> {
            self.clock_ms.get()
        }

        fn request_headers(&self) -> Option<RequestHeaders> {
            self.with_effective(|r| RequestHeaders::from_pairs(&r.headers))
        }

        fn set_request_header(&self, name: &str, value: Option<&str>) {
            self.request_header_edits.set(self.request_header_edits.get() + 1);
            self.with_effective(|r| {
                r.headers.retain(|(n, _)| n != name);
                if let Some(value) = value {
                    r.headers.push((name.to_string(), value.to_string()));
                }
            });
        }

        fn request_body(&self, size: usize) -> Option<Vec<u8>> {
            self.with_effective(|r| r.body.iter().take(size).copied().collect())
        }

        fn response_header(&self, name: &str) -> Option<String> {
            self.with_effective(|r| {
                r.response_headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
            })
            .flatten()
        }

        fn set_response_header(&self, name: &str, value: Option<&str>) {
            self.with_effective(|r| {
                r.response_headers.retain(|(n, _)| n != name);
                if let Some(value) = value {
                    r.response_headers.push((name.to_string(), value.to_string()));
                }
            });
        }

        fn response_body(&self, size: usize) -> Option<Vec<u8>> {
            self.with_effective(|r| r.response_body.iter().take(size).copied().collect())
        }

        fn set_response_body(&self, size: usize, body: &[u8]) {
            self.with_effective(|r| {
                let size = size.min(r.response_body.len());
                r.response_body.splice(..size, body.iter().copied());
            });
        }

        fn send_response(&self, response: &LocalResponse) {
            self.with_effective(|r| {
                r.sent = Some(response.clone());
                r.sent_count += 1;
            });
        }

        fn set_effective_context(&self, context_id: u32) -> bool {
            self.effective.set(context_id);
            self.requests.borrow().contains_key(&context_id)
        }

        fn resume_request(&self) -> bool {
            self.with_effective(|r| r.resumed += 1).is_some()
        }

        fn dispatch_call(
            &self,
            cluster: &str,
            headers: &[(&str, &str)],
            _timeout_ms: u64,
        ) -> Result<u32, String> {
            if self.fail_dispatch.get() {
                return Err("no such cluster".into());
            }
            let token = self.next_token.get() + 1;
            self.next_token.set(token);
            let path = headers.iter().find(|(n, _)| *n == ":path").map_or("", |(_, v)| v);
            self.calls.borrow_mut().push(Call {
                token,
                cluster: cluster.to_string(),
                path: path.to_string(),
            });
            Ok(token)
        }

        fn call_response_header(&self, name: &str) -> Option<String> {
            let response = self.call_response.borrow();
            response.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        }

        fn call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, String> {
            let response = self.call_response.borrow();
            Ok(Some(response.1.iter().take(size).copied().collect()))
        }

        fn define_counter(&self, name: &str) -> Option<u32> {
            let mut counters = self.counters.borrow_mut();
            counters.push((name.to_string(), 0));
            u32::try_from(counters.len() - 1).ok()
        }

        fn add_to_counter(&self, id: u32, delta: u64) {
            if let Some((_, value)) = self.counters.borrow_mut().get_mut(id as usize) {
                *value += delta;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_read_back_as_written_with_repeats_counted() {
        let headers = RequestHeaders::from_pairs(&[
            (":path", "/mcp"),
            ("mcp-name", "echo"),
            ("empty", ""),
            ("mcp-name", "secret"),
        ]);
        let again = RequestHeaders::parse(headers.bytes.clone()).unwrap();
        assert_eq!(again, headers);
        assert_eq!(again.pairs().count(), 4);
        let name = again.lookup("mcp-name");
        assert_eq!(
            (name.text().as_deref(), name.count, name.is_repeated()),
            (Some("echo"), 2, true)
        );
        assert_eq!(again.lookup(":path").text().as_deref(), Some("/mcp"));
        assert!(!again.lookup(":path").is_repeated());
        assert_eq!(again.lookup("empty").text().as_deref(), Some(""));
        assert_eq!(again.lookup("absent"), Lookup::default());
        assert_eq!(again.texts("mcp-name"), ["echo", "secret"]);
        assert_eq!(RequestHeaders::parse(Vec::new()).unwrap().pairs().count(), 0);
    }

    #[test]
    fn invalid_utf8_values_are_replaced_not_refused() {
        let headers = RequestHeaders::from_pairs(&[("x", &b"a\xffb"[..])]);
        assert_eq!(headers.lookup("x").text().as_deref(), Some("a\u{fffd}b"));
    }

    #[test]
    fn malformed_serialisations_are_refused() {
        let good = RequestHeaders::from_pairs(&[("a", "1"), ("bb", "22")]).bytes;
        for cut in 1..good.len() {
            assert_eq!(RequestHeaders::parse(good[..cut].to_vec()), None, "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(RequestHeaders::parse(longer), None, "trailing bytes");
        let mut unterminated = good.clone();
        let last = unterminated.len() - 1;
        unterminated[last] = b'x';
        assert_eq!(RequestHeaders::parse(unterminated), None, "a value without its NUL");
        let mut huge = good;
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(RequestHeaders::parse(huge), None, "a count beyond the bytes");
    }
}
