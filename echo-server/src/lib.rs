//! MCP echo server over Streamable HTTP, built on the official Rust SDK `rmcp`.
//!
//! [`EchoServer`] is the MCP handler with its tools `echo` and `whoami`; [`router`]
//! mounts it at `/mcp` in an axum [`Router`]; [`serve`] / [`serve_listener`]
//! run it until a shutdown token is cancelled.

pub mod config;

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::serve::ListenerExt;
use axum::Router;
use rmcp::handler::server::common::{schema_for_input, schema_for_type};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Json;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, JsonObject, ServerCapabilities, ServerConfig,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ErrorData, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use tracing::Level;

pub use config::Config;

/// Server name reported in the `initialize` result.
pub const SERVER_NAME: &str = "MCP Echo Server";
/// Server version reported in the `initialize` result.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Path the MCP endpoint is mounted at.
pub const MCP_PATH: &str = "/mcp";
/// Smallest accepted `repeat_count`.
pub const MIN_REPEAT: i64 = 1;
/// Largest accepted `repeat_count`.
pub const MAX_REPEAT: i64 = 10;
/// `repeat_count` used when the argument is omitted.
pub const DEFAULT_REPEAT: i64 = 3;

/// Request header the proxy puts the caller's subject (`sub` claim) in (envoy.yaml's
/// `claims_to_headers`).
pub const SUBJECT_HEADER: &str = "x-mcp-subject";
/// Request header the proxy puts the token's scopes (`scope` claim, space separated) in.
pub const SCOPE_HEADER: &str = "x-mcp-scope";
/// Request header the proxy puts the caller's roles (`roles` claim, joined with `,`) in.
pub const ROLES_HEADER: &str = "x-mcp-roles";

/// Arguments of the `echo` tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// Message to echo
    pub message: String,
    /// Number of times to repeat the message
    #[serde(default = "default_repeat_count")]
    #[schemars(range(min = 1, max = 10))]
    pub repeat_count: i64,
}

fn default_repeat_count() -> i64 {
    DEFAULT_REPEAT
}

impl EchoArgs {
    /// Deserializes tool-call arguments, mapping failures to invalid params.
    pub fn from_arguments(arguments: JsonObject) -> Result<Self, ErrorData> {
        serde_json::from_value(serde_json::Value::Object(arguments)).map_err(|e| {
            ErrorData::invalid_params(format!("invalid arguments for tool echo: {e}"), None)
        })
    }
}

/// JSON schema of the `echo` tool's arguments, as rmcp would derive it for
/// `Parameters<EchoArgs>`.
pub fn echo_input_schema() -> Arc<JsonObject> {
    schema_for_input::<EchoArgs>().unwrap_or_else(|e| {
        tracing::error!("echo input schema failed validation: {e}");
        schema_for_type::<EchoArgs>()
    })
}

/// Checks `repeat_count` and turns it into a count, or an invalid-params error.
pub fn check_repeat_count(repeat_count: i64) -> Result<usize, ErrorData> {
    if (MIN_REPEAT..=MAX_REPEAT).contains(&repeat_count) {
        usize::try_from(repeat_count).map_err(|_| repeat_count_error(repeat_count))
    } else {
        Err(repeat_count_error(repeat_count))
    }
}

fn repeat_count_error(repeat_count: i64) -> ErrorData {
    ErrorData::invalid_params(
        format!("repeat_count must be between {MIN_REPEAT} and {MAX_REPEAT}, got {repeat_count}"),
        None,
    )
}

/// The caller as the proxy in front described it: what `whoami` returns.
///
/// The server trusts these headers only because it is reachable through the proxy alone,
/// which removes a client's own copies and sets them from the verified token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, JsonSchema)]
pub struct Identity {
    /// The token's subject (`sub`), or null when no proxy passed one.
    pub subject: Option<String>,
    /// The token's scopes, in the order granted.
    pub scopes: Vec<String>,
    /// The caller's roles (`roles` claim).
    pub roles: Vec<String>,
}

impl Identity {
    /// Reads the identity headers of one request; a header that is not valid text counts as
    /// absent.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Identity {
        let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let list = |name: &str, separator: char| -> Vec<String> {
            text(name)
                .map(|value| {
                    value
                        .split(separator)
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        Identity {
            subject: text(SUBJECT_HEADER).map(str::to_owned),
            scopes: list(SCOPE_HEADER, ' '),
            roles: list(ROLES_HEADER, ','),
        }
    }
}

/// The MCP handler: the tools `echo` and `whoami`.
#[derive(Debug, Clone)]
pub struct EchoServer {
    tool_router: ToolRouter<Self>,
}

impl Default for EchoServer {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_router]
impl EchoServer {
    /// Creates the handler.
    pub fn new() -> Self {
        Self { tool_router: Self::tool_router() }
    }

    /// Returns `message` repeated `repeat_count` times, without separator.
    ///
    /// The arguments are deserialized here rather than through rmcp's
    /// `Parameters` extractor: rmcp turns extractor failures into an
    /// `isError` tool result, while this server reports every bad argument
    /// (missing, wrong type, out of range) as a JSON-RPC invalid-params error.
    #[tool(
        description = "Echo a message a specified number of times.",
        input_schema = echo_input_schema()
    )]
    pub fn echo(&self, arguments: JsonObject) -> Result<CallToolResult, ErrorData> {
        let args = EchoArgs::from_arguments(arguments)?;
        let count = check_repeat_count(args.repeat_count)?;
        Ok(CallToolResult::success(vec![ContentBlock::text(args.message.repeat(count))]))
    }

    /// Returns the caller's subject, scopes and roles as the proxy passed them in headers:
    /// identity propagation made visible. rmcp's Streamable HTTP service hands each request's
    /// HTTP parts to the handler as an extension.
    #[tool(
        description = "Return who is calling: the subject, scopes and roles the authorization proxy passed to this server."
    )]
    pub fn whoami(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> Result<Json<Identity>, ErrorData> {
        Ok(Json(Identity::from_headers(&parts.headers)))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for EchoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(SERVER_NAME, SERVER_VERSION))
            .with_instructions(
                "Call the `echo` tool to have a message repeated back, and `whoami` to see the \
                 identity the authorization proxy passed along.",
            )
    }
}

/// Builds the axum router: the MCP endpoint at [`MCP_PATH`] with request
/// logging. Cancelling `shutdown` ends every MCP session.
pub fn router(config: &Config, shutdown: CancellationToken) -> Router {
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts())
        .with_cancellation_token(shutdown);
    let mcp = StreamableHttpService::new(
        || Ok(EchoServer::new()),
        LocalSessionManager::default().into(),
        mcp_config,
    );
    Router::new().nest_service(MCP_PATH, mcp).layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
            .on_response(
                DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Micros),
            ),
    )
}

/// Serves on an already bound listener until `shutdown` is cancelled, then
/// ends the MCP sessions and waits for open connections to finish.
pub async fn serve_listener(
    listener: TcpListener,
    config: &Config,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let app = router(config, shutdown.child_token());
    let addr = listener.local_addr()?;
    tracing::info!(
        "MCP echo server listening on http://{addr}{MCP_PATH} (allowed hosts: {})",
        config.allowed_hosts().join(", ")
    );
    // Without TCP_NODELAY, Nagle's algorithm holds the last small write of each streamed (SSE)
    // response until the client ACKs the one before, and clients delay that ACK by ~40 ms: on a
    // kept-alive connection (Envoy's upstream, every real client) each call waited ~40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY on an accepted connection: {e}");
        }
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    tracing::info!("MCP echo server stopped");
    Ok(())
}

/// Binds `config.bind` and serves until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> io::Result<()> {
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.bind)))?;
    serve_listener(listener, &config, shutdown).await
}

/// Starts listening for Ctrl-C (SIGINT) and, on Unix, SIGTERM right away,
/// and returns a future that resolves when the first of them arrives.
///
/// Must be called inside a Tokio runtime.
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("received SIGINT (Ctrl-C), shutting down"),
                _ = terminate.recv() => tracing::info!("received SIGTERM, shutting down"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            match tokio::signal::ctrl_c().await {
                Ok(()) => tracing::info!("received Ctrl-C, shutting down"),
                Err(e) => {
                    tracing::error!("cannot listen for Ctrl-C: {e}");
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeat_count_bounds() {
        assert_eq!(check_repeat_count(1).ok(), Some(1));
        assert_eq!(check_repeat_count(10).ok(), Some(10));
        for bad in [0, 11, -1, i64::MAX, i64::MIN] {
            let err = check_repeat_count(bad).err();
            assert_eq!(
                err.map(|e| (e.code, e.message.into_owned())),
                Some((
                    rmcp::model::ErrorCode::INVALID_PARAMS,
                    format!("repeat_count must be between 1 and 10, got {bad}")
                ))
            );
        }
    }

    #[test]
    fn echo_repeats_without_separator() {
        let server = EchoServer::new();
        let mut arguments = JsonObject::new();
        arguments.insert("message".into(), "ab".into());
        let result = server.echo(arguments);
        let text = result
            .ok()
            .and_then(|r| r.content.first().and_then(|c| c.as_text().map(|t| t.text.clone())));
        assert_eq!(text.as_deref(), Some("ababab"));
    }

    #[test]
    fn input_schema_is_valid_for_rmcp() {
        assert!(schema_for_input::<EchoArgs>().is_ok());
        let schema = echo_input_schema();
        assert_eq!(schema.get("required"), Some(&serde_json::json!(["message"])));
    }

    #[test]
    fn bad_arguments_are_invalid_params() {
        let err = EchoArgs::from_arguments(JsonObject::new()).err();
        assert_eq!(
            err.map(|e| (e.code, e.message.into_owned())),
            Some((
                rmcp::model::ErrorCode::INVALID_PARAMS,
                "invalid arguments for tool echo: missing field `message`".to_owned()
            ))
        );
    }
}
