//! The HTTP side on `http_port`: hyper's HTTP/1 server on the worker's
//! tokio runtime, over TLS (tokio-rustls, the server's certificate
//! configuration) when the server has TLS. Routes: `/render`,
//! `/metrics/find` (and `/metrics`), `/metrics/expand`,
//! `/metrics/index.json`, and the dashboard at `/`. Parameters come from
//! the URL and, for POST (as Grafana sends them), a form body.
//!
//! Protections as on the metrics port: protected mode answers peers beyond
//! loopback 403 with the fix; past the connection limit a connection is
//! answered 503; request heads are bounded (`MAX_HEAD`), bodies too
//! (`MAX_BODY`, else 413), and a head must arrive within `HEAD_TIMEOUT`.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::{dashboard, metrics, render};
use crate::server::listener::ConnectionSlot;
use crate::server::log::Level;
use crate::server::shared::Shared;
use crate::server::socket::{LINGER, LINGER_BYTES};
use crate::server::stream::HANDSHAKE_TIMEOUT;
use crate::server::PROTECTED_MODE;

/// Longest request head (line and headers) hyper buffers.
pub const MAX_HEAD: usize = 64 << 10;
/// Longest request body (a form of targets).
pub const MAX_BODY: usize = 1 << 20;
/// A request head must arrive within this long (also the keep-alive idle
/// limit between requests).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

type Body = Full<Bytes>;

pub(in crate::server) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let tls = shared.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let refusal = if shared.protected && !peer.ip().to_canonical().is_loopback() {
            shared.log(
                Level::Info,
                &format!("protected mode: refusing an HTTP connection from {peer}"),
            );
            Some((StatusCode::FORBIDDEN, PROTECTED_MODE))
        } else {
            None
        };
        let open = shared.connections.fetch_add(1, Ordering::Relaxed);
        let slot = ConnectionSlot(Arc::clone(&shared));
        let refusal = refusal.or_else(|| {
            (open >= shared.limits.max_connections).then(|| {
                shared.log(
                    Level::Warning,
                    &format!("refusing an HTTP connection from {peer}: {open} connections open"),
                );
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    crate::server::TOO_MANY_CONNECTIONS,
                )
            })
        });
        let tls = tls.clone();
        drop(tokio::spawn(async move {
            match tls {
                None => serve(stream, slot, refusal).await,
                Some(acceptor) => {
                    let shared = Arc::clone(&slot.0);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve(stream, slot, refusal).await,
                        Ok(Err(e)) => shared.log(
                            Level::Info,
                            &format!("HTTP connection from {peer}: TLS handshake failed: {e}"),
                        ),
                        Err(_) => shared.log(
                            Level::Info,
                            &format!("HTTP connection from {peer}: the TLS handshake timed out"),
                        ),
                    }
                }
            }
        }));
    }
}

async fn serve<S>(mut stream: S, slot: ConnectionSlot, refusal: Option<(StatusCode, &'static str)>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::clone(&slot.0);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let shared = Arc::clone(&shared);
        async move {
            Ok::<_, Infallible>(match refusal {
                Some((status, message)) => text(status, message.to_owned()),
                None => handle(request, &shared).await,
            })
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(refusal.is_none());
    // hyper borrows the stream so that it is still here to linger on.
    let connection = builder.serve_connection(TokioIo::new(&mut stream), service);
    let idle = slot.0.limits.idle_timeout;
    // Errors are the peer's (reset, bad request, slow head): hyper answered
    // what could be answered.
    let _ = match idle {
        Some(idle) => tokio::time::timeout(idle.max(HEAD_TIMEOUT) * 4, connection)
            .await
            .unwrap_or(Ok(())),
        None => connection.await,
    };
    linger(&mut stream).await;
    drop(slot);
}

/// As on the metrics port: half-closes the stream, then reads and drops
/// what the peer still sends (at most `LINGER`, `LINGER_BYTES`). A peer
/// refused mid-body (413, 431) is still sending; closing on its unread
/// bytes would reset the connection, and the reset destroys the refusal in
/// the peer's buffer before it reads it.
async fn linger<S>(stream: &mut S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(LINGER, async {
        // Errors mean the peer is gone, which is what lingering waits for.
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 16 << 10];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body.into_bytes())
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn handle(request: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let mut params: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let method = request.method().clone();
    if method != Method::GET && method != Method::POST && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not served here: use GET or POST"),
        );
    }
    if method == Method::POST {
        // A body announced too long is refused before any of it is read.
        if hyper::body::Body::size_hint(request.body()).lower() > MAX_BODY as u64 {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body: longer than {MAX_BODY} bytes"),
            );
        }
        match Limited::new(request.into_body(), MAX_BODY).collect().await {
            Ok(body) => params.extend(form_urlencoded::parse(&body.to_bytes()).into_owned()),
            Err(e) => {
                let status = if e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                return text(
                    status,
                    format!("request body: {e} (at most {MAX_BODY} bytes)"),
                );
            }
        }
    }
    let get = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let flag = |name: &str| get(name).is_some_and(|v| v != "0" && !v.is_empty());
    let read = |work: &mut dyn FnMut(&dyn super::Source)| {
        let state = shared.lock();
        work(&state.view(shared));
    };
    match path.as_str() {
        "/" | "/index.html" => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            dashboard::HTML.into(),
        ),
        "/dashboard.js" => respond(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            dashboard::JS.into(),
        ),
        "/dashboard.css" => respond(
            StatusCode::OK,
            "text/css; charset=utf-8",
            dashboard::CSS.into(),
        ),
        "/render" | "/render/" => {
            let outcome = render::Request::parse(&params, now()).and_then(|request| {
                let mut read = read;
                render::render(&request, &mut read)
            });
            match outcome {
                Ok((body, content_type)) => respond(StatusCode::OK, content_type, body),
                Err(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        "/metrics" | "/metrics/" | "/metrics/find" | "/metrics/find/" => {
            let Some(query) = get("query").filter(|q| !q.is_empty()) else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "missing required parameter 'query'".into(),
                );
            };
            let mut found = Ok(Vec::new());
            read(&mut |source| found = metrics::find(source, &query));
            let nodes = match found {
                Ok(nodes) => nodes,
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad query: {e}")),
            };
            let leaves_only = flag("leavesOnly");
            let nodes: Vec<_> = nodes
                .into_iter()
                .filter(|n| n.is_leaf || !leaves_only)
                .collect();
            match get("format").as_deref() {
                None | Some("treejson") => respond(
                    StatusCode::OK,
                    "application/json",
                    metrics::tree_json(&query, &nodes),
                ),
                Some("completer") => respond(
                    StatusCode::OK,
                    "application/json",
                    metrics::completer_json(&nodes),
                ),
                Some(other) => text(
                    StatusCode::BAD_REQUEST,
                    format!("unsupported format {other:?}: use treejson or completer"),
                ),
            }
        }
        "/metrics/expand" | "/metrics/expand/" => {
            let queries: Vec<String> = params
                .iter()
                .filter(|(k, _)| k == "query")
                .map(|(_, v)| v.clone())
                .collect();
            if queries.is_empty() {
                return text(
                    StatusCode::BAD_REQUEST,
                    "missing required parameter 'query'".into(),
                );
            }
            let mut out = Ok(Vec::new());
            read(&mut |source| {
                out = metrics::expand(source, &queries, flag("leavesOnly"), flag("groupByExpr"))
            });
            match out {
                Ok(body) => respond(StatusCode::OK, "application/json", body),
                Err(e) => text(StatusCode::BAD_REQUEST, format!("bad query: {e}")),
            }
        }
        "/metrics/index.json" => {
            let mut out = Vec::new();
            read(&mut |source| out = metrics::index(source));
            respond(StatusCode::OK, "application/json", out)
        }
        _ => text(StatusCode::NOT_FOUND, format!("no such page: {path}")),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
