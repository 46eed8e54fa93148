//! `coexist serve-gal`: the GAL in the store as a read-only LDAP v3
//! address book (`coexist-gal-server`), re-read from the store every
//! `[gal_server] refresh_seconds` and swapped in whole when it changed.

use std::path::Path;

use coexist_gal_server::{Account, GalServer, Password, Settings};

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

    let store = Store::open(&config.store_url()?).await?;
    let mut served = store.load_gal().await?;
    let server = GalServer::new(settings, &served).map_err(|e| Failure::usage(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(table.listen)
        .await
        .map_err(|e| Failure {
            code: exit::FAILURE,
            message: format!("cannot listen on {}: {e}", table.listen),
        })?;
    let address = listener.local_addr()?;
    let ldaps = match table.ldaps_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| Failure {
                    code: exit::FAILURE,
                    message: format!("cannot listen on {at}: {e}"),
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
    err_line(format_args!(
        "coexist serve-gal: serving {} GAL entries on {urls} under {}",
        served.len(),
        table.base
    ));

    let serving = async {
        match ldaps {
            Some(ldaps) => {
                tokio::try_join!(server.serve(listener), server.serve_ldaps(ldaps)).map(|_| ())
            }
            None => server.serve(listener).await,
        }
    };
    tokio::pin!(serving);
    let mut ticks = tokio::time::interval(table.refresh);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            outcome = &mut serving => {
                outcome.map_err(|e| Failure { code: exit::FAILURE, message: e.to_string() })?;
                return Ok(exit::OK);
            }
            _ = ticks.tick() => match store.load_gal().await {
                Ok(gal) if gal != served => {
                    server.replace(&gal);
                    served = gal;
                }
                Ok(_) => tracing::debug!("the GAL is unchanged"),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the GAL; serving the last one read");
                }
            },
            _ = shutdown() => {
                err_line(format_args!("coexist serve-gal: stopped"));
                return Ok(exit::OK);
            }
        }
    }
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
