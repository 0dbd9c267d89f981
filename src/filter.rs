//! The wasm glue: the only module that talks to proxy-wasm. [`ProxyHost`] implements
//! [`Host`] over the hostcalls; the contexts forward each callback to the VM's [`Worker`]
//! and translate its [`Flow`] into an [`Action`].
//!
//! Hostcalls are made through `proxy_wasm::hostcalls`, which return `Result`, never through
//! the trait conveniences that unwrap: a panic would kill the VM and fail every later request.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use log::error;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

use crate::host::{utf8_or_replaced, Host, RequestHeaders};
use crate::jwks_sync::SharedStore;
use crate::response::LocalResponse;
use crate::worker::{Flow, Worker};

/// How often each VM looks at the shared key-set record and at waiting requests.
const TICK: Duration = Duration::from_millis(100);

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { worker: Rc::new(RefCell::new(None)) })
    });
}}

/// The VM's worker, shared by the root context and the HTTP contexts of one worker thread.
type SharedWorker = Rc<RefCell<Option<Worker>>>;

/// Runs `f` on the worker. `None` when there is none (no configuration) or it is in use, which
/// a host calling back into the VM during a callback would cause: logged, never silent.
fn with_worker<T>(shared: &SharedWorker, f: impl FnOnce(&mut Worker) -> T) -> Option<T> {
    match shared.try_borrow_mut() {
        Ok(mut guard) => guard.as_mut().map(f),
        Err(_) => {
            error!("filter state in use by another callback");
            None
        }
    }
}

struct ProxyHost;

impl SharedStore for ProxyHost {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), cas)) => Ok(Some((value, cas.unwrap_or(0)))),
            Ok((None, _)) => Ok(None),
            Err(status) => Err(format!("get_shared_data failed: {status:?}")),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, String> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(true),
            Err(Status::CasMismatch) => Ok(false),
            Err(status) => Err(format!("set_shared_data failed: {status:?}")),
        }
    }
}

impl Host for ProxyHost {
    fn now_ms(&self) -> Option<u64> {
        let since_epoch = hostcalls::get_current_time().ok()?.duration_since(UNIX_EPOCH).ok()?;
        u64::try_from(since_epoch.as_millis()).ok()
    }

    // Through the ABI directly: the SDK's map getters panic on a name that is not UTF-8 and
    // copy every name and value, where the filter looks a few up in place.
    fn request_headers(&self) -> Option<RequestHeaders> {
        RequestHeaders::parse(request_header_pairs()?)
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) {
        if let Err(status) = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value) {
            error!("cannot change request header {name}: {status:?}");
        }
    }

    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size).ok().flatten()
    }

    fn response_header(&self, name: &str) -> Option<String> {
        let value = hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name);
        value.ok().flatten().map(utf8_or_replaced)
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) {
        if let Err(status) = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value) {
            error!("cannot change response header {name}: {status:?}");
        }
    }

    fn response_body(&self, size: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size).ok().flatten()
    }

    fn set_response_body(&self, size: usize, body: &[u8]) {
        if let Err(status) = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body) {
            error!("cannot replace the response body: {status:?}");
        }
    }

    fn send_response(&self, response: &LocalResponse) {
        let headers: Vec<(&str, &str)> =
            response.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let sent = hostcalls::send_http_response(response.status, headers, Some(&response.body));
        if let Err(status) = sent {
            error!("cannot send the local response: {status:?}");
        }
    }

    fn set_effective_context(&self, context_id: u32) -> bool {
        hostcalls::set_effective_context(context_id).is_ok()
    }

    fn resume_request(&self) -> bool {
        hostcalls::resume_http_request().is_ok()
    }

    fn dispatch_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, String> {
        let timeout = Duration::from_millis(timeout_ms);
        hostcalls::dispatch_http_call(cluster, headers.to_vec(), None, vec![], timeout)
            .map_err(|status| format!("{status:?}"))
    }

    // The key-set server's headers are read as bytes, like the request's.
    fn call_response_header(&self, name: &str) -> Option<String> {
        let value = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name);
        value.ok().flatten().map(utf8_or_replaced)
    }

    fn call_response_body(&self, size: usize) -> Result<Option<Vec<u8>>, String> {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size)
            .map_err(|status| format!("{status:?}"))
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        hostcalls::define_metric(MetricType::Counter, name).ok()
    }

    fn add_to_counter(&self, id: u32, delta: u64) {
        let _ = hostcalls::increment_metric(id, i64::try_from(delta).unwrap_or(i64::MAX));
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    // Plain integers, not the SDK's enums: a status the enum lacks stays a number.
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
}

/// The request headers' pair serialisation, as the host wrote it into memory it allocated
/// through the SDK's `proxy_on_memory_allocate`; `None` when the host refused.
fn request_header_pairs() -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer and a length to the two locals. On success the pointer
    // is null (no headers) or a buffer of exactly `size` bytes the host allocated with
    // `proxy_on_memory_allocate`, which the SDK implements as a `Vec<u8>` of that capacity,
    // leaked: taking it back as a `Vec` owns and later frees it, as the SDK's own getters do.
    unsafe {
        let request_headers = MapType::HttpRequestHeaders as u32;
        match proxy_get_header_map_pairs(request_headers, &mut data, &mut size) {
            0 if data.is_null() => Some(Vec::new()),
            0 => Some(Vec::from_raw_parts(data, size, size)),
            status => {
                error!("cannot read the request headers: status {status}");
                None
            }
        }
    }
}

struct Root {
    worker: SharedWorker,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _: usize) {
        with_worker(&self.worker, |w| w.on_call_response(&ProxyHost, token, body_size));
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                error!("cannot read the plugin configuration: {status:?}");
                return false;
            }
        };
        let worker = match Worker::configure(&ProxyHost, &bytes) {
            Ok(worker) => worker,
            Err(why) => {
                error!("{why}");
                return false;
            }
        };
        if let Err(status) = hostcalls::set_tick_period(TICK) {
            error!("cannot set the tick period: {status:?}");
            return false;
        }
        // Follow the host's level for this plugin, so per-request debug lines cost nothing
        // unless an operator asks for them (`--component-log-level wasm:debug`).
        if let Ok(level) = hostcalls::get_log_level() {
            proxy_wasm::set_log_level(level);
        }
        *self.worker.borrow_mut() = Some(worker);
        // The first fetch starts on the first tick: a callout dispatched from inside
        // on_configure is never answered in Envoy.
        true
    }

    fn on_tick(&mut self) {
        with_worker(&self.worker, |w| w.on_tick(&ProxyHost));
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http { context_id, worker: Rc::clone(&self.worker) }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    context_id: u32,
    worker: SharedWorker,
}

impl Context for Http {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _: usize) {
        with_worker(&self.worker, |w| w.on_call_response(&ProxyHost, token, body_size));
    }
}

fn action(flow: Option<Flow>) -> Action {
    match flow {
        Some(Flow::Continue) => Action::Continue,
        Some(Flow::Pause) => Action::Pause,
        // No worker to judge the request: fail closed.
        None => {
            Worker::refuse_unjudged(&ProxyHost);
            Action::Pause
        }
    }
}

/// A response callback's action. Without a worker there is nothing this filter let through
/// that it must still judge (a request it passed had a worker), so the response goes on.
fn passive(flow: Option<Flow>) -> Action {
    match flow {
        Some(Flow::Pause) => Action::Pause,
        Some(Flow::Continue) | None => Action::Continue,
    }
}

// `make wasm` drops the exports of every proxy-wasm callback not implemented here, so Envoy
// does not enter the VM for them on each request: a callback added to these impls needs its
// export added to scripts/wasm_exports.py (tests/test_wasm_module.py checks the two agree).
impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let id = self.context_id;
        action(with_worker(&self.worker, |w| w.on_request_headers(&ProxyHost, id, end_of_stream)))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let id = self.context_id;
        action(with_worker(&self.worker, |w| {
            w.on_request_body(&ProxyHost, id, body_size, end_of_stream)
        }))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let id = self.context_id;
        passive(with_worker(&self.worker, |w| w.on_response_headers(&ProxyHost, id)))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let id = self.context_id;
        passive(with_worker(&self.worker, |w| {
            w.on_response_body(&ProxyHost, id, body_size, end_of_stream)
        }))
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let id = self.context_id;
        with_worker(&self.worker, |w| w.on_request_gone(id));
    }
}
