//! No-op proxy-wasm HTTP filter: the floor of any wasm filter in Envoy.
//!
//! Per request it does what every auth filter must do at least: Envoy creates an HTTP context
//! in the VM, the filter reads the `authorization` request header across the ABI, and the
//! request continues. Whatever our filter costs above this is its own work.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot) });
}}

struct NoopRoot;

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Noop))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Noop;

impl Context for Noop {}

impl HttpContext for Noop {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // hostcalls:: returns a Result (the trait helper would unwrap); the value is only looked at.
        let header = hostcalls::get_map_value(MapType::HttpRequestHeaders, "authorization");
        std::hint::black_box(&header);
        Action::Continue
    }
}
