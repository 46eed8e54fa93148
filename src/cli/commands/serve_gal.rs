//! `coexist serve-gal`: the GAL in the store as a read-only LDAP v3
//! address book (`coexist-gal-server`), re-read from the store every
//! `[gal_server] refresh_seconds` and swapped in whole when it changed.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use coexist_connector::Connector;
use coexist_gal_server::{Account, GalServer, Password, PasswordCheck, Settings, Verdict};
use coexist_model::GalEntry;

use crate::cli::failure::Failure;
use crate::cli::print::err_line;
use crate::config::{self, Config};
use crate::exit;
use crate::store::Store;

/// Serves the stored GAL until interrupted (Ctrl-C or SIGTERM: exit 0):
/// LDAP on `listen` (with StartTLS when `[gal_server.tls]` gives a
/// certificate) and LDAPS on `ldaps_listen`.
pub async fn run(config_path: &Path) -> Result<i32, Failure> {
    let config = Config::load(config_path)?;
    let stop = shutdown();
    let serving = start(&config).await?;
    err_line(format_args!(
        "coexist serve-gal: serving {} GAL entries on {} under {}",
        serving.entries, serving.urls, serving.base
    ));
    if serving.entries == 0 {
        err_line(format_args!(
            "coexist serve-gal: the store holds no GAL yet; it is served as soon as `coexist sync` computes one"
        ));
    }
    let Serving { server, .. } = serving;
    tokio::pin!(stop);
    let mut server = server;
    let outcome = tokio::select! {
        outcome = &mut server => match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure { code: exit::FAILURE, message: e.to_string() }),
            Err(e) => Err(Failure { code: exit::FAILURE, message: format!("the server stopped: {e}") }),
        },
        _ = &mut stop => {
            err_line(format_args!("coexist serve-gal: stopped"));
            Ok(())
        }
    };
    server.abort();
    outcome.map(|()| exit::OK)
}

/// The address book being served: its tasks end when this is dropped.
pub struct Serving {
    /// How many GAL entries were served at the start.
    pub entries: usize,
    /// Where: `ldap://…` (and ` (StartTLS)`, ` and ldaps://…`).
    pub urls: String,
    /// The base DN.
    pub base: String,
    /// The listeners' task; ends with an error when serving fails.
    server: AbortOnDrop<Result<(), coexist_gal_server::ServeError>>,
    /// The task re-reading the store's GAL.
    _refresher: AbortOnDrop<()>,
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> AbortOnDrop<T> {
    fn abort(&self) {
        self.0.abort();
    }
}

/// Starts serving `config`'s GAL as `[gal_server]` says (`coexist
/// serve-gal`, and `coexist daemon` for an organisation with that table):
/// the store read, the listeners bound, the server and the task that
/// re-reads the GAL every `refresh_seconds` spawned.
pub async fn start(config: &Config) -> Result<Serving, Failure> {
    let table = config
        .gal_server
        .clone()
        .unwrap_or_else(|| config::GalServer::defaults(&config.policy.shared_domains));
    let mut accounts = Vec::with_capacity(table.accounts.len());
    for (n, account) in table.accounts.iter().enumerate() {
        let password = account.password.resolve().map_err(|e| {
            Failure::usage(format!(
                "{}: gal_server.accounts[{n}].password: {e}",
                config.path.display()
            ))
        })?;
        accounts.push(Account {
            dn: account.dn.clone(),
            password: Password::new(password.expose()),
        });
    }
    let mut settings = Settings::new(table.base.clone());
    settings.accounts = accounts;
    settings.anonymous = table.anonymous;
    settings.size_limit = table.size_limit;
    settings.max_connections_per_client = table.max_connections_per_client;
    settings.requests_per_second = table.requests_per_second;
    settings.unbound_timeout = table.unbound_timeout;
    if let Some(tls) = &table.tls {
        settings.tls = Some(
            coexist_gal_server::tls_config(&tls.cert_file, &tls.key_file).map_err(|e| {
                Failure::usage(format!("{}: gal_server.tls: {e}", config.path.display()))
            })?,
        );
    }
    if let Some(system) = &table.pass_through {
        settings.pass_through = Some(directory_binds(config, system)?);
    }

    let store = Store::open(&config.store_url()?).await?;
    let gal = store.load_gal().await?;
    let server = GalServer::new(settings, &gal).map_err(|e| Failure::usage(e.to_string()))?;
    let served = digest(&gal);
    let entries = gal.len();
    drop(gal);
    let listener = tokio::net::TcpListener::bind(table.listen)
        .await
        .map_err(|e| Failure {
            code: exit::FAILURE,
            message: format!("cannot listen on {} (gal_server.listen): {e}", table.listen),
        })?;
    let address = listener.local_addr()?;
    let ldaps = match table.ldaps_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| Failure {
                    code: exit::FAILURE,
                    message: format!("cannot listen on {at} (gal_server.ldaps_listen): {e}"),
                })?,
        ),
        None => None,
    };
    let mut urls = format!("ldap://{address}");
    if table.tls.is_some() {
        urls.push_str(" (StartTLS)");
    }
    if let Some(listener) = &ldaps {
        urls.push_str(&format!(" and ldaps://{}", listener.local_addr()?));
    }
    let listening = server.clone();
    let serving = tokio::spawn(async move {
        match ldaps {
            Some(ldaps) => {
                tokio::try_join!(listening.serve(listener), listening.serve_ldaps(ldaps))
                    .map(|_| ())
            }
            None => listening.serve(listener).await,
        }
    });
    let refresher = tokio::spawn(refresh(store, server, table.refresh, served));
    Ok(Serving {
        entries,
        urls,
        base: table.base,
        server: AbortOnDrop(serving),
        _refresher: AbortOnDrop(refresher),
    })
}

/// Binds passed through to a configured LDAP or AD system, checked by its
/// connector ([`Connector::check_password`]).
struct DirectoryBinds {
    system: String,
    connector: Arc<dyn Connector>,
}

impl fmt::Debug for DirectoryBinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectoryBinds")
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

impl PasswordCheck for DirectoryBinds {
    fn check<'a>(
        &'a self,
        name: &'a str,
        password: &'a str,
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            match self.connector.check_password(name, password).await {
                Ok(true) => Verdict::Accepted,
                Ok(false) => Verdict::Refused,
                Err(e) => Verdict::Unavailable(e.to_string()),
            }
        })
    }

    fn directory(&self) -> &str {
        &self.system
    }
}

/// The password check of `[gal_server] pass_through = "system"`.
fn directory_binds(config: &Config, system: &str) -> Result<Arc<dyn PasswordCheck>, Failure> {
    let found = config
        .systems
        .iter()
        .find(|s| s.id == system)
        .ok_or_else(|| {
            Failure::usage(format!(
                "{}: gal_server.pass_through: no system has the id `{system}`",
                config.path.display()
            ))
        })?;
    let connector = crate::connectors::connect(config, found)?;
    Ok(Arc::new(DirectoryBinds {
        system: system.to_string(),
        connector,
    }))
}

/// Reads the store's GAL every `every` and serves it when it changed
/// (`served` is the digest of the one served); a failed read keeps the
/// last GAL served.
async fn refresh(store: Store, server: GalServer, every: Duration, mut served: Option<[u8; 32]>) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match store.load_gal().await {
            Ok(gal) => {
                let now = digest(&gal);
                if now.is_none() || now != served {
                    server.replace(&gal);
                    served = now;
                } else {
                    tracing::debug!("the GAL is unchanged");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the GAL; serving the last one read");
            }
        }
    }
}

/// A digest of `gal`, to tell a changed GAL from the one served without
/// keeping a second copy of it (nor its JSON: it is hashed as written).
fn digest(gal: &[GalEntry]) -> Option<[u8; 32]> {
    use sha2::Digest as _;
    struct Hashing(sha2::Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hashing = Hashing(sha2::Sha256::new());
    serde_json::to_writer(&mut hashing, gal).ok()?;
    Some(hashing.0.finalize().into())
}

/// Ctrl-C, or SIGTERM on Unix. The handlers are installed when this is
/// called (not when first awaited), so a signal that comes before the
/// server waits for one is not lost.
fn shutdown() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, Signal, SignalKind};
        async fn received(signal: Option<Signal>) {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let term = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            tokio::select! {
                _ = received(term) => {}
                _ = received(interrupt) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
