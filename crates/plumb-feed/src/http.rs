//! The driver's HTTP GET for REST book snapshots: hyper's HTTP/1.1 client over a fresh TCP (and
//! rustls) connection per fetch, with a deadline and a cap on the body. Snapshot fetches are rare
//! (a bootstrap or a resync), so no connection is kept.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, Uri, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a fetch has no usable body.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: Option<u16>,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) message: String,
}

impl Failure {
    fn new(message: impl std::fmt::Display) -> Self {
        Self { status: None, retry_after: None, message: message.to_string() }
    }
}

/// GETs `url` and returns the body of a 2xx answer, within `timeout`, refusing bodies over
/// `max_body` bytes.
pub(crate) async fn get(
    url: &str,
    timeout: Duration,
    max_body: usize,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Bytes, Failure> {
    tokio::time::timeout(timeout, attempt(url, max_body, tls))
        .await
        .unwrap_or_else(|_| Err(Failure::new(format_args!("no answer within {timeout:?}"))))
}

async fn attempt(url: &str, max_body: usize, tls: &Arc<rustls::ClientConfig>) -> Result<Bytes, Failure> {
    let uri: Uri = url.parse().map_err(|e| Failure::new(format_args!("invalid URL {url:?}: {e}")))?;
    let secure = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(Failure::new(format_args!("not an http(s) URL: {url:?}"))),
    };
    let host = uri.host().ok_or_else(|| Failure::new("URL without a host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let authority = uri.authority().map_or_else(|| host.clone(), |a| a.as_str().to_owned());
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(Failure::new)?;
    let _ = tcp.set_nodelay(true);
    let request = Request::get(path)
        .header(header::HOST, authority)
        .header(header::USER_AGENT, concat!("plumb/", env!("CARGO_PKG_VERSION")))
        .header(header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(Failure::new)?;
    if secure {
        let name = rustls::pki_types::ServerName::try_from(host).map_err(Failure::new)?;
        let stream =
            tokio_rustls::TlsConnector::from(Arc::clone(tls)).connect(name, tcp).await.map_err(Failure::new)?;
        exchange(TokioIo::new(stream), request, max_body).await
    } else {
        exchange(TokioIo::new(tcp), request, max_body).await
    }
}

async fn exchange<T>(io: T, request: Request<Empty<Bytes>>, max_body: usize) -> Result<Bytes, Failure>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(Failure::new)?;
    // The connection is driven beside the request, and dropped with it.
    let conn = async move {
        let _ = conn.await;
        std::future::pending::<()>().await;
    };
    let response = async {
        let response = sender.send_request(request).await.map_err(Failure::new)?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // The exchange's own words, when it sent a short body (Binance's `{"code":-1121,...}`).
            let reason = status.canonical_reason().unwrap_or("error");
            let body =
                Limited::new(response.into_body(), 1024).collect().await.ok().map(http_body_util::Collected::to_bytes);
            let message = match body.as_deref().map(String::from_utf8_lossy) {
                Some(text) if !text.trim().is_empty() => format!("{reason}: {}", text.trim()),
                _ => reason.to_owned(),
            };
            return Err(Failure { status: Some(status.as_u16()), retry_after, message });
        }
        let body = Limited::new(response.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| Failure::new(format_args!("reading the body: {e}")))?;
        Ok(body.to_bytes())
    };
    tokio::select! {
        r = response => r,
        () = conn => Err(Failure::new("connection ended")),
    }
}
