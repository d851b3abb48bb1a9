//! A scriptable HTTP/1.1 server on 127.0.0.1 that plays an OpenAI-compatible model or a
//! tool worker, for examples and tests that must not touch the network: each request is
//! kept (headers and body) and answered by a function of it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::llm::ToolCall;

/// Most bytes of a request's head, and of its body, the stub reads.
const HEAD_BYTES_MAX: usize = 64 << 10;
const BODY_BYTES_MAX: usize = 64 << 20;

/// A request the stub received.
#[derive(Clone, Debug)]
pub struct StubRequest {
    /// `POST`, `GET`, …
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The headers, names in lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
    /// When it arrived (its head and body read).
    pub at: Instant,
}

impl StubRequest {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// How the stub answers a request.
#[derive(Clone, Debug)]
pub enum StubReply {
    /// This status and JSON body.
    Json(u16, Value),
    /// This status and text body (sent as `application/json`: for malformed answers).
    Text(u16, String),
    /// This status, these extra headers, and this JSON body.
    WithHeaders(u16, Vec<(String, String)>, Value),
    /// Nothing for this long, then the connection closes unanswered.
    Silence(Duration),
}

type Respond = dyn Fn(&StubRequest) -> StubReply + Send + Sync;

/// The server; it stops when dropped.
pub struct StubServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<StubRequest>>>,
    stopping: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl StubServer {
    /// Listens on a free port of 127.0.0.1 and answers every request with `respond`.
    pub fn start(
        respond: impl Fn(&StubRequest) -> StubReply + Send + Sync + 'static,
    ) -> io::Result<StubServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let respond: Arc<Respond> = Arc::new(respond);
        let accept = {
            let (requests, stopping) = (Arc::clone(&requests), Arc::clone(&stopping));
            std::thread::Builder::new()
                .name("stub-http".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stopping.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let (requests, respond) = (Arc::clone(&requests), Arc::clone(&respond));
                        std::thread::spawn(move || {
                            let _ = serve(stream, &requests, &*respond);
                        });
                    }
                })?
        };
        Ok(StubServer {
            addr,
            requests,
            stopping,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received so far, in arrival order.
    pub fn requests(&self) -> Vec<StubRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    requests: &Mutex<Vec<StubRequest>>,
    respond: &Respond,
) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push(line.trim_end().to_owned());
        if head.iter().map(String::len).sum::<usize>() > HEAD_BYTES_MAX {
            return Err(io::Error::other("request head too large"));
        }
    }
    let Some(request_line) = head.first() else {
        return Ok(());
    };
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = head[1..]
        .iter()
        .filter_map(|h| h.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(BODY_BYTES_MAX);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request = StubRequest {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(request.clone());
    let (status, extra, text) = match respond(&request) {
        StubReply::Json(status, value) => (status, Vec::new(), value.to_string()),
        StubReply::Text(status, text) => (status, Vec::new(), text),
        StubReply::WithHeaders(status, headers, value) => (status, headers, value.to_string()),
        StubReply::Silence(wait) => {
            std::thread::sleep(wait);
            return Ok(());
        }
    };
    let mut stream = stream;
    let extra: String = extra
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "HTTP/1.1 {status} Stub\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()
}

/// A chat-completions answer (OpenAI's wire form) from model `model` with `content`
/// and `calls`, as a stub model replies.
pub fn chat_answer(model: &str, content: Option<&str>, calls: &[ToolCall]) -> Value {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|c| {
            json!({ "id": c.id, "type": "function",
                    "function": { "name": c.name, "arguments": c.arguments.to_string() } })
        })
        .collect();
    let finish = if calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    let mut message = json!({ "role": "assistant", "content": content });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    json!({
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "model": model,
        "choices": [{ "index": 0, "finish_reason": finish, "message": message }],
        "usage": { "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15 }
    })
}
