//! The `/metrics` endpoint and the probes beside it (`/healthz`, `/readyz`:
//! [`health`]): HTTP/1.1 on the daemon's runtime, GET and HEAD of those only, one request per connection, a few connections at a
//! time, each with a deadline: a scraper, not a web server.
use std::{convert::Infallible, io, net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinHandle};

use super::{CONTENT_TYPE, SharedCollector, health, render};
use crate::state::Shared;

/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 8;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may live, response included.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head read.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics.listen = \"{addr}\": cannot listen there: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// Binds the listen address; done before anything is attached, so a taken
/// port fails the start.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })
}

/// The running endpoint; dropping it stops serving.
pub struct MetricsServer(JoinHandle<()>);

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `/metrics` on `listener` on the current runtime.
pub fn spawn(listener: TcpListener, shared: Arc<Shared>) -> MetricsServer {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving OpenMetrics at /metrics, probes at /healthz and /readyz");
    }
    MetricsServer(tokio::spawn(serve(listener, shared)))
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let collector = SharedCollector(shared);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!("metrics: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics: too many connections, closing");
            continue;
        };
        let collector = collector.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&request, &collector);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_REQUEST_BYTES)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%peer, "metrics: {error}"),
                Err(_) => tracing::debug!(%peer, "metrics: connection timed out"),
            }
            drop(slot);
        });
    }
}

fn respond(request: &Request<Incoming>, collector: &SharedCollector) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !["/metrics", "/healthz", "/readyz"].contains(&path) {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: pinwatch serves /metrics, /healthz and /readyz only\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let probe = match path {
        "/healthz" => Some(health::liveness(&collector.0)),
        "/readyz" => Some(health::readiness(&collector.0)),
        _ => None,
    };
    if let Some(answer) = probe {
        let status = if answer.ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return plain(status, answer.body);
    }
    let mut response = Response::new(Full::new(Bytes::from(render(collector.clone()))));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

fn plain(status: StatusCode, text: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(text.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
