//! Sequential tool calls on one kept-alive connection, as Envoy and every real
//! client send them, must not wait on the peer's delayed ACK.
//!
//! Without `TCP_NODELAY` on accepted sockets, Nagle's algorithm holds the
//! last small write of each streamed (SSE) response until the client ACKs the
//! previous one, and the client delays that ACK by ~40 ms: every call took
//! ~43 ms. The bound below is a regression guard, not a benchmark: a healthy
//! server answers in well under a millisecond, the stall is ~40 ms, and the
//! bound sits between them with room for a busy, shared debug-build machine.
//! The client is a plain TCP socket speaking HTTP/1.1, so that which connection
//! carries each call is not left to a client library's pool.

#![allow(clippy::panic)] // panicking is how a test fails

use std::time::{Duration, Instant};

use echo_server::Config;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type AnyError = Box<dyn std::error::Error + Send + Sync>;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Calls timed on the kept-alive connection.
const CALLS: u32 = 25;
/// Mean time per call above which the connection is judged stalled: half the
/// ~40 ms delayed-ACK timer, and tens of times a healthy call.
const STALL_BOUND: Duration = Duration::from_millis(20);

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"keepalive-test","version":"1.0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn echo_call(id: u32) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"hi","repeat_count":2}}}}}}"#
    )
}

struct Response {
    status: u16,
    session_id: Option<String>,
    body: String,
}

/// One HTTP/1.1 connection, kept alive across requests.
struct Connection {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    async fn open(addr: std::net::SocketAddr) -> Result<Self, AnyError> {
        let stream = TcpStream::connect(addr).await?;
        Ok(Self { stream: BufReader::new(stream), host: addr.to_string() })
    }

    async fn post(&mut self, body: &str, session: Option<&str>) -> Result<Response, AnyError> {
        tokio::time::timeout(TIMEOUT, self.post_inner(body, session))
            .await
            .map_err(|_| "no complete response within the timeout")?
    }

    async fn post_inner(
        &mut self,
        body: &str,
        session: Option<&str>,
    ) -> Result<Response, AnyError> {
        let mut request = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        if let Some(session) = session {
            request.push_str(&format!("Mcp-Session-Id: {session}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        // One write per request, like wrk: the client side adds no Nagle wait of its own.
        self.stream.get_mut().write_all(request.as_bytes()).await?;

        let status_line = self.line().await?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let (mut length, mut chunked, mut session_id) = (None, false, None);
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or("bad header line")?;
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.parse::<usize>()?),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "mcp-session-id" => session_id = Some(value.to_owned()),
                "connection" if value.eq_ignore_ascii_case("close") => {
                    return Err("the server closed the kept-alive connection".into())
                }
                _ => {}
            }
        }
        let body = if chunked {
            self.chunked_body().await?
        } else {
            let mut bytes = vec![0; length.unwrap_or(0)];
            self.stream.read_exact(&mut bytes).await?;
            bytes
        };
        Ok(Response { status, session_id, body: String::from_utf8(body)? })
    }

    async fn line(&mut self) -> Result<String, AnyError> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err("connection closed mid-response".into());
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    async fn chunked_body(&mut self) -> Result<Vec<u8>, AnyError> {
        let mut body = Vec::new();
        loop {
            let size_line = self.line().await?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)?;
            if size == 0 {
                // Trailers (none expected), then the blank line ending the message.
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.stream.read_exact(&mut body[start..]).await?;
            if !self.line().await?.is_empty() {
                return Err("chunk not followed by CRLF".into());
            }
        }
    }
}

#[tokio::test]
async fn sequential_calls_on_one_connection_do_not_stall() -> TestResult {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = Config { bind: addr, ..Config::default() };
    let shutdown = CancellationToken::new();
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { echo_server::serve_listener(listener, &config, shutdown).await }
    });

    let mut connection = Connection::open(addr).await?;
    let init = connection.post(INITIALIZE, None).await?;
    assert_eq!(init.status, 200, "{}", init.body);
    let session = init.session_id.ok_or("initialize returned no Mcp-Session-Id")?;
    let initialized = connection.post(INITIALIZED, Some(&session)).await?;
    assert_eq!(initialized.status, 202, "{}", initialized.body);

    // A few calls first: the kernel ACKs quickly at the start of a connection,
    // which would hide the stall.
    for id in 2..6 {
        let reply = connection.post(&echo_call(id), Some(&session)).await?;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let started = Instant::now();
    for id in 100..100 + CALLS {
        let reply = connection.post(&echo_call(id), Some(&session)).await?;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body.contains(r#""text":"hihi""#), "{}", reply.body);
        assert!(reply.body.contains(&format!(r#""id":{id}"#)), "{}", reply.body);
    }
    let per_call = started.elapsed() / CALLS;
    println!("{CALLS} sequential tools/call on one connection: {per_call:?} per call");
    assert!(
        per_call < STALL_BOUND,
        "{per_call:?} per call on a kept-alive connection (bound {STALL_BOUND:?}): \
         responses wait on the client's delayed ACK (is TCP_NODELAY set on accepted sockets?)"
    );

    drop(connection);
    shutdown.cancel();
    tokio::time::timeout(TIMEOUT, server).await???;
    Ok(())
}
