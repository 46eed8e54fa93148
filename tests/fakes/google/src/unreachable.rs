//! A token endpoint that cannot be reached: Google's `oauth2.googleapis.com`
//! as a client sees it when the network path or the service is down. Put its
//! URI in a key file ([`crate::FakeGoogle::service_account_key_json_with_token_uri`])
//! to test what a client does when it cannot get a token at all.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A port on `127.0.0.1` where no HTTP answer ever comes.
#[derive(Debug)]
pub struct UnreachableEndpoint {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    task: Option<JoinHandle<()>>,
}

impl Drop for UnreachableEndpoint {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl UnreachableEndpoint {
    /// A port nothing listens on: every connection is refused by the
    /// system. Attempts cannot be counted ([`Self::connections`] stays 0).
    pub async fn closed() -> std::io::Result<UnreachableEndpoint> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        drop(listener);
        Ok(UnreachableEndpoint {
            addr,
            connections: Arc::new(AtomicU64::new(0)),
            task: None,
        })
    }

    /// A port that takes each connection and closes it before answering
    /// (a host whose service died behind its listener): the client sees
    /// its connection closed or reset. Each connection is counted.
    pub async fn hanging_up() -> std::io::Result<UnreachableEndpoint> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicU64::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Ok(UnreachableEndpoint {
            addr,
            connections,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn token_uri(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Connections taken so far (always 0 for [`Self::closed`]).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}
