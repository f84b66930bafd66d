//! A relay on 127.0.0.1 between an SDK client and a real emulator that injects faults:
//! each request it receives either gets the fault the script holds for it, or is passed
//! to the emulator unchanged and its answer passed back. One request per connection
//! (every answer says `Connection: close`), which the SDK's HTTP client handles as any
//! server closing a connection.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the relay does with one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// An HTTP error answer in the AWS JSON protocols' shape (`x-amzn-errortype` and a
    /// JSON body with `__type` and `message`).
    Answer {
        status: u16,
        error_type: &'static str,
    },
    /// The connection is closed once the request is read, with no answer.
    Reset,
    /// DynamoDB's answer to a transaction that met another one on an item:
    /// `TransactionCanceledException` with the reason `TransactionConflict`.
    TransactionConflict,
    /// The request waits this long before it is passed on.
    Delay(Duration),
    /// The request is passed on and its effect happens, but the connection is closed
    /// before the answer gets back: the client cannot know that it worked.
    ForwardThenReset,
}

/// A fault waiting for a request, and which requests it is for.
struct Scripted {
    /// A substring of the request's `X-Amz-Target` (`TransactWriteItems`), or any request.
    target: Option<&'static str>,
    fault: Fault,
}

/// A running relay: its URL, and the requests it has seen.
pub struct FaultRelay {
    pub url: String,
    script: Arc<Mutex<VecDeque<Scripted>>>,
    seen: Arc<Mutex<usize>>,
}

impl FaultRelay {
    /// Starts a relay in front of `upstream` (an `http://host:port` URL) that applies
    /// `faults` to the first requests, one each, and passes every later one on.
    pub async fn start(upstream: &str, faults: Vec<Fault>) -> FaultRelay {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a relay");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let upstream = upstream.trim_end_matches('/').to_owned();
        let script: VecDeque<Scripted> = faults
            .into_iter()
            .map(|fault| Scripted {
                target: None,
                fault,
            })
            .collect();
        let script = Arc::new(Mutex::new(script));
        let seen = Arc::new(Mutex::new(0));
        let (task_script, task_seen) = (script.clone(), seen.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (http, upstream) = (http.clone(), upstream.clone());
                let (script, seen) = (task_script.clone(), task_seen.clone());
                tokio::spawn(async move {
                    let _ = relay_one(stream, &script, &seen, &http, &upstream).await;
                });
            }
        });
        FaultRelay { url, script, seen }
    }

    /// Adds `count` times `fault` for the next requests whose `X-Amz-Target` contains
    /// `target` (any request when `None`).
    pub fn inject(&self, target: Option<&'static str>, fault: Fault, count: usize) {
        let mut script = self.script.lock().expect("the relay's script");
        for _ in 0..count {
            script.push_back(Scripted {
                target,
                fault: fault.clone(),
            });
        }
    }

    /// Drops every fault not yet applied.
    pub fn clear(&self) {
        self.script.lock().expect("the relay's script").clear();
    }

    /// How many requests reached the relay.
    pub fn requests_seen(&self) -> usize {
        *self.seen.lock().expect("the relay's count")
    }

    /// Faults still waiting for a request.
    pub fn faults_left(&self) -> usize {
        self.script.lock().expect("the relay's script").len()
    }
}

/// One HTTP/1.1 request, as read off the wire.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn read_request(stream: &mut TcpStream) -> anyhow::Result<Request> {
    let mut buffer = Vec::new();
    let header_end = loop {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await?;
        anyhow::ensure!(read > 0, "the client closed before a whole request");
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (
        request_line.next().unwrap_or_default().to_owned(),
        request_line.next().unwrap_or_default().to_owned(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[header_end..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let read = stream.read(&mut chunk).await?;
        anyhow::ensure!(read > 0, "the client closed before the whole body");
        body.extend_from_slice(&chunk[..read]);
    }
    Ok(Request {
        method,
        target,
        headers,
        body,
    })
}

async fn relay_one(
    mut stream: TcpStream,
    script: &Mutex<VecDeque<Scripted>>,
    seen: &Mutex<usize>,
    http: &reqwest::Client,
    upstream: &str,
) -> anyhow::Result<()> {
    let request = read_request(&mut stream).await?;
    let target = request
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-amz-target"))
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let fault = {
        *seen.lock().expect("the relay's count") += 1;
        let mut script = script.lock().expect("the relay's script");
        let at = script
            .iter()
            .position(|entry| entry.target.is_none_or(|wanted| target.contains(wanted)));
        at.and_then(|at| script.remove(at)).map(|entry| entry.fault)
    };
    let reset_after = matches!(fault, Some(Fault::ForwardThenReset));
    match fault {
        Some(Fault::Reset) => return Ok(()),
        Some(Fault::Answer { status, error_type }) => {
            let body = format!(r#"{{"__type":"{error_type}","message":"injected by the relay"}}"#);
            let answer = format!(
                "HTTP/1.1 {status} Injected\r\ncontent-type: application/x-amz-json-1.0\r\n\
                 x-amzn-errortype: {error_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await?;
            return Ok(());
        }
        Some(Fault::TransactionConflict) => {
            let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]","CancellationReasons":[{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#;
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await?;
            return Ok(());
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::ForwardThenReset) | None => {}
    }
    let method = reqwest::Method::from_bytes(request.method.as_bytes())?;
    let mut forwarded = http.request(method, format!("{upstream}{}", request.target));
    for (name, value) in &request.headers {
        if !["host", "content-length", "connection"]
            .iter()
            .any(|skip| name.eq_ignore_ascii_case(skip))
        {
            forwarded = forwarded.header(name, value);
        }
    }
    let response = forwarded.body(request.body).send().await?;
    let status = response.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        if ["content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|skip| name.as_str().eq_ignore_ascii_case(skip))
        {
            continue;
        }
        head.push_str(&format!(
            "{name}: {}\r\n",
            value.to_str().unwrap_or_default()
        ));
    }
    let body = response.bytes().await?;
    if reset_after {
        // The effect happened upstream; the answer is lost on the way back.
        return Ok(());
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    Ok(())
}
