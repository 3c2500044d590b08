//! The TLS listener of the APNs endpoint: rustls with ALPN `h2` only, HTTP/2 only, and a
//! supervisor that serves it in generations so `POST /cut` can drop every connection and
//! listen again on the same port.

use crate::control::{CutReport, CutRequest};
use crate::pki::Material;
use crate::state::Shared;
use anyhow::Context;
use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long to try binding the port again after a cut (another process could take it).
const REBIND_FOR: Duration = Duration::from_secs(10);
/// How long a cut waits for the handlers of dropped requests to end.
const SETTLE_FOR: Duration = Duration::from_secs(2);

/// rustls with the ring provider only, TLS 1.2 and 1.3, offering only `h2` like APNs.
pub fn tls_config(material: &Material) -> anyhow::Result<RustlsConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(material.leaf_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(material.leaf_key_der.clone())),
        )
        .context("the leaf certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(cfg)))
}

pub struct TlsListener {
    pub listener: TcpListener,
    pub tls: RustlsConfig,
    pub router: Router,
    pub shared: Arc<Shared>,
}

/// Serve until `stop`, one generation per cut. Fails only if the port cannot be bound again.
pub async fn supervise(
    l: TlsListener,
    mut cuts: mpsc::Receiver<CutRequest>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let addr = l.listener.local_addr()?;
    let mut next = Some(l.listener);
    // A cut waiting for the listener to be back, with its report.
    let mut waiting: Option<(CutRequest, CutReport)> = None;
    loop {
        let listener = match next.take() {
            Some(listener) => listener,
            None => match rebind(addr, &stop).await {
                Ok(Some(listener)) => listener,
                Ok(None) => return Ok(()),
                Err(e) => {
                    if let Some((reply, _)) = waiting.take() {
                        let _ = reply.send(Err(format!("{e:#}")));
                    }
                    return Err(e);
                }
            },
        };
        let handle = Handle::new();
        let streams = l.shared.lock().settings.max_concurrent_streams;
        let mut server = axum_server::from_tcp_rustls(listener, l.tls.clone())?
            .handle(handle.clone())
            .http2_only();
        server
            .http_builder()
            .http2()
            .max_concurrent_streams(streams);
        let mut serving = tokio::spawn(server.serve(l.router.clone().into_make_service()));
        handle
            .listening()
            .await
            .context("the APNs listener did not start")?;
        l.shared.listening_on(handle);
        tracing::info!(%addr, max_concurrent_streams = streams, "APNs endpoint listening");
        if let Some((reply, report)) = waiting.take() {
            let _ = reply.send(Ok(report));
        }

        tokio::select! {
            _ = stop.cancelled() => {
                l.shared.stop();
                let _ = serving.await;
                return Ok(());
            }
            cut = cuts.recv() => {
                let Some(reply) = cut else {
                    l.shared.stop();
                    let _ = serving.await;
                    return Ok(());
                };
                let requests_in_flight = l.shared.in_flight();
                let connections = l.shared.cut();
                // The listening socket closes when the server's future ends.
                let _ = (&mut serving).await;
                // Handlers run in their own tasks and see the cut a moment later: wait, so the
                // records of dropped requests say so when the cut is answered.
                let settle = Instant::now() + SETTLE_FOR;
                while l.shared.in_flight() > 0 && Instant::now() < settle {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let cuts_so_far = l.shared.stats().cuts;
                tracing::info!(connections, requests_in_flight, "cut: every connection dropped");
                waiting = Some((reply, CutReport {
                    connections_dropped: connections as u64,
                    requests_in_flight,
                    cuts: cuts_so_far,
                }));
            }
            ended = &mut serving => {
                // axum-server's accept loop retries accept errors itself: this is unexpected.
                l.shared.stop();
                return match ended {
                    Ok(Ok(())) => Err(anyhow::anyhow!("the APNs listener stopped")),
                    Ok(Err(e)) => Err(e).context("the APNs listener failed"),
                    Err(e) => Err(e).context("the APNs listener panicked"),
                };
            }
        }
    }
}

/// Bind `addr` again (std sets SO_REUSEADDR, so connections in TIME_WAIT do not block it).
/// `None` if stopped meanwhile.
async fn rebind(addr: SocketAddr, stop: &CancellationToken) -> anyhow::Result<Option<TcpListener>> {
    let start = Instant::now();
    loop {
        match TcpListener::bind(addr) {
            Ok(listener) => return Ok(Some(listener)),
            Err(e) if start.elapsed() >= REBIND_FOR => {
                return Err(e).with_context(|| format!("binding {addr} again after a cut"));
            }
            Err(e) => tracing::warn!(%addr, error = %e, "binding again after a cut; retrying"),
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
