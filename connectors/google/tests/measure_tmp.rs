mod common;
use coexist_connector::{Connector, NoProgress, Operation};
use coexist_fake_google::{FakeGoogle, FakeOptions, UnreachableEndpoint};
use coexist_google::GoogleConnector;
use common::{config_for, person_stub};
use std::time::Instant;

async fn measure(defaults: bool) {
    let google = FakeGoogle::start(FakeOptions::default()).await.unwrap();
    google.seed_synthetic(20, 3, 2);
    let endpoint = UnreachableEndpoint::hanging_up().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = google.service_account_key_json_with_token_uri(&endpoint.token_uri());
    let mut config = config_for(&google, &key, &dir).unwrap();
    if defaults {
        let d = coexist_google::GoogleConfig::new("a", "b", config.service_account_key.clone());
        config.max_attempts = d.max_attempts;
        config.retry_base_delay_ms = d.retry_base_delay_ms;
        config.retry_max_delay_ms = d.retry_max_delay_ms;
    } else {
        config.max_attempts = 4;
        config.retry_base_delay_ms = 20;
        config.retry_max_delay_ms = 100;
    }
    let connector = GoogleConnector::new("google", config).unwrap();
    let t = Instant::now();
    let pull = connector.pull(None, &NoProgress).await;
    println!(
        "MEASURE defaults={defaults} pull: {:?} token attempts {} err {:?}",
        t.elapsed(),
        endpoint.connections(),
        pull.err().map(|e| e.to_string())
    );
    let ops: Vec<_> = (0..250)
        .map(|i| Operation::Create {
            stub: person_stub(&format!("l:{i}"), &format!("p{i}@acmecorp.com")),
        })
        .collect();
    let before = endpoint.connections();
    let t = Instant::now();
    let r = connector.apply_many(&ops).await;
    println!(
        "MEASURE defaults={defaults} apply_many: {:?} token attempts {} err0 {:?}",
        t.elapsed(),
        endpoint.connections() - before,
        r[0].as_ref().err().map(|e| e.to_string())
    );
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn quick() {
    measure(false).await
}
#[tokio::test]
#[ignore]
#[allow(clippy::unwrap_used)]
async fn defaults() {
    measure(true).await
}
