//! End-to-end tests: the server runs in-process on 127.0.0.1:0 and is driven
//! by rmcp's own Streamable HTTP client (and plain reqwest for the Host check).

#![allow(clippy::panic)] // panicking is how a test fails

use std::net::SocketAddr;
use std::time::Duration;

use echo_server::{Config, EchoServer, SERVER_NAME, SERVER_VERSION};
use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorCode, JsonObject};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const TIMEOUT: Duration = Duration::from_secs(10);

struct TestServer {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    async fn start() -> Result<Self, std::io::Error> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let config = Config { bind: addr, ..Config::default() };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { echo_server::serve_listener(listener, &config, shutdown).await }
        });
        Ok(Self { addr, shutdown, task })
    }

    fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    async fn client(
        &self,
    ) -> Result<RunningService<RoleClient, ()>, Box<dyn std::error::Error + Send + Sync>> {
        self.client_with_headers(&[]).await
    }

    /// A client whose every request carries `headers`, as a proxy in front would add them.
    async fn client_with_headers(
        &self,
        headers: &[(&'static str, &str)],
    ) -> Result<RunningService<RoleClient, ()>, Box<dyn std::error::Error + Send + Sync>> {
        let mut custom = std::collections::HashMap::new();
        for (name, value) in headers {
            custom.insert(
                reqwest::header::HeaderName::from_static(name),
                reqwest::header::HeaderValue::from_str(value)?,
            );
        }
        let config =
            StreamableHttpClientTransportConfig::with_uri(self.url()).custom_headers(custom);
        let transport = StreamableHttpClientTransport::from_config(config);
        Ok(tokio::time::timeout(TIMEOUT, ().serve(transport)).await??)
    }

    /// Cancels the server and checks that it stops cleanly and promptly.
    async fn stop(self) -> TestResult {
        self.shutdown.cancel();
        tokio::time::timeout(TIMEOUT, self.task).await???;
        Ok(())
    }
}

fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, got {other}"),
    }
}

async fn call_echo(
    client: &RunningService<RoleClient, ()>,
    arguments: Value,
) -> Result<CallToolResult, ServiceError> {
    let params = CallToolRequestParams::new("echo").with_arguments(args(arguments));
    match tokio::time::timeout(TIMEOUT, client.call_tool(params)).await {
        Ok(result) => result,
        Err(_) => panic!("tools/call timed out"),
    }
}

fn only_text(result: &CallToolResult) -> String {
    assert_eq!(result.is_error, Some(false), "{result:?}");
    assert_eq!(result.content.len(), 1, "{result:?}");
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_else(|| panic!("expected text content, got {result:?}"))
}

fn invalid_params_message(result: Result<CallToolResult, ServiceError>) -> String {
    match result {
        Err(ServiceError::McpError(error)) => {
            assert_eq!(error.code, ErrorCode::INVALID_PARAMS, "{error:?}");
            error.message.into_owned()
        }
        other => panic!("expected an invalid-params error, got {other:?}"),
    }
}

#[tokio::test]
async fn initialize_reports_server_name_and_version() -> TestResult {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let info = client.peer_info().ok_or("no peer info after initialize")?;
    let implementation = info.server_info.clone().ok_or("no serverInfo")?;
    assert_eq!(implementation.name, SERVER_NAME);
    assert_eq!(implementation.name, "MCP Echo Server");
    assert_eq!(implementation.version, SERVER_VERSION);
    assert!(info.capabilities.tools.is_some(), "tools capability missing");
    client.cancel().await?;
    server.stop().await
}

#[tokio::test]
async fn tools_list_describes_echo() -> TestResult {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let tools = tokio::time::timeout(TIMEOUT, client.list_all_tools()).await??;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["echo", "whoami"], "{tools:?}");
    let echo = tools.first().ok_or("no tool")?;
    assert_eq!(echo.name, "echo");
    assert_eq!(echo.description.as_deref(), Some("Echo a message a specified number of times."));

    let schema = Value::Object((*echo.input_schema).clone());
    assert_eq!(schema["type"], "object", "{schema:#}");
    assert_eq!(schema["required"], json!(["message"]), "{schema:#}");
    let message = &schema["properties"]["message"];
    assert_eq!(message["type"], "string", "{schema:#}");
    assert_eq!(message["description"], "Message to echo", "{schema:#}");
    let repeat = &schema["properties"]["repeat_count"];
    assert_eq!(repeat["type"], "integer", "{schema:#}");
    assert_eq!(repeat["description"], "Number of times to repeat the message", "{schema:#}");
    assert_eq!(repeat["minimum"], 1, "{schema:#}");
    assert_eq!(repeat["maximum"], 10, "{schema:#}");
    assert_eq!(repeat["default"], 3, "{schema:#}");

    // The handler's own view agrees with what went over the wire.
    let local = EchoServer::echo_tool_attr();
    assert_eq!(local.input_schema, echo.input_schema);

    client.cancel().await?;
    server.stop().await
}

#[tokio::test]
async fn echo_repeats_message() -> TestResult {
    let server = TestServer::start().await?;
    let client = server.client().await?;

    let result = call_echo(&client, json!({"message": "hi", "repeat_count": 2})).await?;
    assert_eq!(only_text(&result), "hihi");

    let result = call_echo(&client, json!({"message": "ab", "repeat_count": 10})).await?;
    assert_eq!(only_text(&result), "ab".repeat(10));

    let result = call_echo(&client, json!({"message": "x y", "repeat_count": 1})).await?;
    assert_eq!(only_text(&result), "x y");

    client.cancel().await?;
    server.stop().await
}

#[tokio::test]
async fn echo_defaults_to_three_copies() -> TestResult {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let result = call_echo(&client, json!({"message": "hi"})).await?;
    assert_eq!(only_text(&result), "hihihi");
    client.cancel().await?;
    server.stop().await
}

#[tokio::test]
async fn echo_rejects_bad_arguments() -> TestResult {
    let server = TestServer::start().await?;
    let client = server.client().await?;

    let message = invalid_params_message(
        call_echo(&client, json!({"message": "hi", "repeat_count": 0})).await,
    );
    assert_eq!(message, "repeat_count must be between 1 and 10, got 0");

    let message = invalid_params_message(
        call_echo(&client, json!({"message": "hi", "repeat_count": 11})).await,
    );
    assert_eq!(message, "repeat_count must be between 1 and 10, got 11");

    let message = invalid_params_message(
        call_echo(&client, json!({"message": "hi", "repeat_count": -5})).await,
    );
    assert_eq!(message, "repeat_count must be between 1 and 10, got -5");

    let message = invalid_params_message(call_echo(&client, json!({"repeat_count": 2})).await);
    assert_eq!(message, "invalid arguments for tool echo: missing field `message`");

    let message = invalid_params_message(
        call_echo(&client, json!({"message": "hi", "repeat_count": "two"})).await,
    );
    assert!(message.starts_with("invalid arguments for tool echo: invalid type"), "{message}");

    // The session still works after the errors.
    let result = call_echo(&client, json!({"message": "ok", "repeat_count": 2})).await?;
    assert_eq!(only_text(&result), "okok");

    client.cancel().await?;
    server.stop().await
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"host-check","version":"1.0"}}}"#;

async fn post_initialize(url: &str, host: &str) -> Result<(u16, String), reqwest::Error> {
    let response = reqwest::Client::new()
        .post(url)
        .header("Host", host)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(INITIALIZE)
        .timeout(TIMEOUT)
        .send()
        .await?;
    let status = response.status().as_u16();
    // Only the head of an SSE reply is needed; do not wait for the stream.
    let body = if status == 200 { String::new() } else { response.text().await? };
    Ok((status, body))
}

#[tokio::test]
async fn host_header_is_checked() -> TestResult {
    let server = TestServer::start().await?;
    let url = server.url();

    for host in ["evil.example.com", "evil.example.com:9000", "localhost.evil.example:9000"] {
        let (status, body) = post_initialize(&url, host).await?;
        assert_eq!(status, 403, "Host {host} should be refused: {body}");
        assert!(body.contains("Host header is not allowed"), "{body}");
    }

    let port_host = format!("127.0.0.1:{}", server.addr.port());
    for host in ["localhost:9000", "127.0.0.1:9000", "localhost", port_host.as_str()] {
        let (status, body) = post_initialize(&url, host).await?;
        assert_eq!(status, 200, "Host {host} should be accepted: {body}");
    }

    server.stop().await
}

#[tokio::test]
async fn extra_allowed_host_is_accepted() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = Config { bind: addr, extra_allowed_hosts: vec!["mcp.example.com:443".into()] };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { echo_server::serve_listener(listener, &config, shutdown).await }
    });
    let server = TestServer { addr, shutdown, task };
    let url = server.url();
    let (status, _) = post_initialize(&url, "mcp.example.com:443").await?;
    assert_eq!(status, 200);
    let (status, _) = post_initialize(&url, "mcp.example.com:8443").await?;
    assert_eq!(status, 403);
    server.stop().await
}

#[tokio::test]
async fn shutdown_with_connected_client_is_prompt() -> TestResult {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let result = call_echo(&client, json!({"message": "z", "repeat_count": 1})).await?;
    assert_eq!(only_text(&result), "z");
    // The client keeps its session (and any SSE stream) open; shutting the
    // server down must still finish, which `stop` checks with a timeout.
    server.stop().await?;
    drop(client);
    Ok(())
}

async fn call_whoami(client: &RunningService<RoleClient, ()>) -> Result<Value, ServiceError> {
    let params = CallToolRequestParams::new("whoami");
    let result = match tokio::time::timeout(TIMEOUT, client.call_tool(params)).await {
        Ok(result) => result?,
        Err(_) => panic!("tools/call timed out"),
    };
    assert_eq!(result.is_error, Some(false), "{result:?}");
    let structured = result.structured_content.clone().unwrap_or(Value::Null);
    // The text content carries the same JSON, for clients that ignore structured content.
    let text: Value = serde_json::from_str(&only_text(&result)).unwrap_or(Value::Null);
    assert_eq!(text, structured);
    Ok(structured)
}

#[tokio::test]
async fn whoami_returns_the_identity_headers_of_each_request() -> TestResult {
    let server = TestServer::start().await?;
    let client = server
        .client_with_headers(&[
            ("x-mcp-subject", "5f0c2b7e-3a1d-4e8b-9c6f-2d7a1e4b8c90"),
            ("x-mcp-scope", "mcp:tools  mcp:admin"),
            ("x-mcp-roles", "admin,user"),
        ])
        .await?;
    assert_eq!(
        call_whoami(&client).await?,
        json!({
            "subject": "5f0c2b7e-3a1d-4e8b-9c6f-2d7a1e4b8c90",
            "scopes": ["mcp:tools", "mcp:admin"],
            "roles": ["admin", "user"],
        })
    );
    client.cancel().await?;

    // Without a proxy in front nothing is claimed.
    let bare = server.client().await?;
    assert_eq!(call_whoami(&bare).await?, json!({"subject": null, "scopes": [], "roles": []}));
    bare.cancel().await?;
    server.stop().await
}

#[tokio::test]
async fn whoami_is_listed_with_an_output_schema() -> TestResult {
    let server = TestServer::start().await?;
    let client = server.client().await?;
    let tools = tokio::time::timeout(TIMEOUT, client.list_all_tools()).await??;
    let whoami = tools.iter().find(|t| t.name == "whoami").ok_or("no whoami")?;
    assert!(whoami.description.as_deref().unwrap_or("").contains("subject"));
    let input = Value::Object((*whoami.input_schema).clone());
    assert_eq!(input["type"], "object", "{input:#}");
    let output = whoami.output_schema.as_ref().map(|s| Value::Object((**s).clone()));
    let output = output.ok_or("no output schema")?;
    for field in ["subject", "scopes", "roles"] {
        assert!(output["properties"].get(field).is_some(), "{field} missing: {output:#}");
    }
    client.cancel().await?;
    server.stop().await
}
