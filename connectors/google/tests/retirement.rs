//! The old user of a person moved away from Google: made to forward
//! (`Connector::forward`), then retired (`Connector::retire`, `coexist
//! move --finish`) as the `provision` table's `retire` says, against the
//! fake Google.

mod common;

use coexist_connector::{Connector, NoProgress, Recipient};
use coexist_fake_google::{FakeOptions, FakeUser};
use coexist_google::config::GoogleProvision;
use coexist_google::{GoogleConfig, GoogleConnector};
use common::{setup_with, Setup, TestResult};

const FORWARD: &str = "ann@mithi.acmecorp.com";
const PERSON: [&str; 2] = ["ann@acmecorp.com", "ann.lee@acmecorp.com"];

fn retiring(retire: Option<&str>, pattern: Option<&str>) -> impl FnOnce(&mut GoogleConfig) {
    let provision = GoogleProvision {
        org_unit_path: None,
        retire: retire.map(str::to_string),
        retired_address: pattern.map(str::to_string),
    };
    move |c| c.provision = Some(provision)
}

/// Ann on the fake, with an alias and an external id of her own, read
/// and made to forward as `coexist move` makes her; her recipient as
/// read then.
async fn ann_forwarding(s: &Setup) -> Result<Recipient, Box<dyn std::error::Error>> {
    s.google.add_domain_alias("gapps.acmecorp.com");
    s.google.add_user(FakeUser {
        primary_email: "ann@acmecorp.com".into(),
        given_name: "Ann".into(),
        family_name: "Lee".into(),
        aliases: vec!["ann.lee@acmecorp.com".into()],
        non_editable_aliases: vec!["ann@gapps.acmecorp.com".into()],
        external_ids: vec![("organization".into(), "E-1234".into())],
        ..Default::default()
    });
    let ann = read(&s.connector, "ann@acmecorp.com")
        .await?
        .ok_or("ann not read")?;
    s.connector.forward(&ann, FORWARD).await?;
    let ann = read(&s.connector, "ann@acmecorp.com")
        .await?
        .ok_or("ann not read")?;
    assert_eq!(ann.forwards_to.as_deref(), Some(FORWARD));
    Ok(ann)
}

async fn read(
    connector: &GoogleConnector,
    primary: &str,
) -> Result<Option<Recipient>, Box<dyn std::error::Error>> {
    let pull = connector.pull(None, &NoProgress).await?;
    Ok(pull
        .recipients
        .into_iter()
        .find(|r| r.primary_address == primary))
}

fn person() -> Vec<String> {
    PERSON.iter().map(|a| a.to_string()).collect()
}

#[tokio::test]
async fn a_rename_frees_every_address_of_the_person_and_keeps_the_users_own() -> TestResult {
    let s = setup_with(FakeOptions::default(), retiring(Some("rename"), None)).await?;
    let mut config = s.config.clone();
    config.gmail_url = s.google.base_url();
    let connector = GoogleConnector::new("google", config)?;
    let s = Setup { connector, ..s };
    let ann = ann_forwarding(&s).await?;

    s.connector.retire(&ann, &person(), FORWARD).await?;

    let old = s.google.user(&ann.anchor).ok_or("the old user is gone")?;
    assert_eq!(old.primary_email, "retired.ann@acmecorp.com");
    assert!(old.aliases.is_empty(), "{:?}", old.aliases);
    assert!(old.suspended);
    assert_eq!(old.auto_forwarding, None, "coexist's forward turned off");
    assert_eq!(
        old.external_ids,
        [("organization".to_string(), "E-1234".to_string())]
    );
    for address in PERSON {
        assert!(s.google.user(address).is_none(), "{address} still held");
    }
    // Read again: a disabled mailbox carrying none of the person's
    // addresses, no forwarding entry any more.
    let retired = read(&s.connector, "retired.ann@acmecorp.com")
        .await?
        .ok_or("not read")?;
    assert_eq!(retired.anchor, ann.anchor);
    assert!(!retired.enabled && retired.mailbox && retired.forwards_to.is_none());
    assert!(retired.addresses().all(|a| !PERSON.contains(&a)));

    // Retiring a retired user succeeds and changes nothing.
    let writes = s.google.requests().user_writes;
    s.connector.retire(&ann, &person(), FORWARD).await?;
    assert_eq!(s.google.requests().user_writes, writes);
    assert_eq!(s.google.user(&ann.anchor), Some(old));
    Ok(())
}

#[tokio::test]
async fn a_rename_follows_the_configured_pattern_and_a_taken_address_keeps_the_user_forwarding(
) -> TestResult {
    let s = setup_with(
        FakeOptions::default(),
        retiring(Some("rename"), Some("former-{local}@{domain}")),
    )
    .await?;
    let mut config = s.config.clone();
    config.gmail_url = s.google.base_url();
    let connector = GoogleConnector::new("google", config)?;
    let s = Setup { connector, ..s };
    let ann = ann_forwarding(&s).await?;
    s.google.add_user(FakeUser {
        primary_email: "former-ann@acmecorp.com".into(),
        given_name: "Ann".into(),
        family_name: "Former".into(),
        ..Default::default()
    });

    let refused = s.connector.retire(&ann, &person(), FORWARD).await;

    let message = refused
        .err()
        .ok_or("retired onto a taken address")?
        .to_string();
    assert!(message.contains("former-ann@acmecorp.com"), "{message}");
    assert!(message.contains("retired_address"), "{message}");
    let old = s.google.user(&ann.anchor).ok_or("gone")?;
    assert_eq!(old.primary_email, "ann@acmecorp.com");
    assert!(old.auto_forwarding.is_some() && !old.suspended);

    // Freed, the rename goes on.
    s.google.remove_user("former-ann@acmecorp.com");
    s.connector.retire(&ann, &person(), FORWARD).await?;
    let old = s.google.user(&ann.anchor).ok_or("gone")?;
    assert_eq!(old.primary_email, "former-ann@acmecorp.com");
    assert!(old.suspended);
    Ok(())
}

#[tokio::test]
async fn a_delete_removes_the_user_coexist_forwards_and_nothing_else() -> TestResult {
    let s = setup_with(FakeOptions::default(), retiring(Some("delete"), None)).await?;
    let mut config = s.config.clone();
    config.gmail_url = s.google.base_url();
    let connector = GoogleConnector::new("google", config)?;
    let s = Setup { connector, ..s };
    let ann = ann_forwarding(&s).await?;
    s.google.add_user(FakeUser {
        primary_email: "bob@acmecorp.com".into(),
        given_name: "Bob".into(),
        family_name: "Ray".into(),
        ..Default::default()
    });

    s.connector.retire(&ann, &person(), FORWARD).await?;

    assert!(s.google.user(&ann.anchor).is_none());
    assert!(s.google.user("ann.lee@acmecorp.com").is_none());
    assert!(s.google.user("bob@acmecorp.com").is_some());
    // Gone already: retired.
    s.connector.retire(&ann, &person(), FORWARD).await?;
    Ok(())
}

#[tokio::test]
async fn a_user_whose_forward_someone_changed_is_left_alone() -> TestResult {
    let s = setup_with(FakeOptions::default(), retiring(Some("delete"), None)).await?;
    let mut config = s.config.clone();
    config.gmail_url = s.google.base_url();
    let connector = GoogleConnector::new("google", config)?;
    let s = Setup { connector, ..s };
    let ann = ann_forwarding(&s).await?;
    // Someone took the mark off by hand (and kept the user).
    s.google.update_user("ann@acmecorp.com", |u| {
        u.external_ids.retain(|(t, _)| t != "coexist-forward")
    });

    let refused = s.connector.retire(&ann, &person(), FORWARD).await;

    let message = refused
        .err()
        .ok_or("deleted a user coexist no longer forwards")?
        .to_string();
    assert!(
        message.contains("does not carry coexist's forward"),
        "{message}"
    );
    assert!(s.google.user(&ann.anchor).is_some());
    Ok(())
}

#[tokio::test]
async fn without_retire_the_old_user_is_kept_and_the_message_says_what_to_set() -> TestResult {
    let s = setup_with(FakeOptions::default(), retiring(None, None)).await?;
    let mut config = s.config.clone();
    config.gmail_url = s.google.base_url();
    let connector = GoogleConnector::new("google", config)?;
    let s = Setup { connector, ..s };
    let ann = ann_forwarding(&s).await?;
    let writes = s.google.requests().user_writes;

    let refused = s.connector.retire(&ann, &person(), FORWARD).await;

    let message = refused.err().ok_or("retired without `retire`")?.to_string();
    assert!(message.contains(r#"retire = "rename""#), "{message}");
    assert_eq!(s.google.requests().user_writes, writes);
    Ok(())
}

#[tokio::test]
async fn a_retirement_google_could_not_carry_out_is_refused_when_connecting() -> TestResult {
    for (retire, pattern, says) in [
        (Some("archive"), None, "expected \"rename\" or \"delete\""),
        (Some("rename"), Some("{local}@{domain}"), "retired_address"),
        (Some("rename"), Some("retired.{local}"), "retired_address"),
        (
            Some("rename"),
            Some("{first}.{local}@{domain}"),
            "retired_address",
        ),
        (
            Some("delete"),
            Some("retired.{local}@{domain}"),
            "rename\"` only",
        ),
        (None, Some("retired.{local}@{domain}"), "`retire` is not"),
    ] {
        let refused = setup_with(FakeOptions::default(), retiring(retire, pattern)).await;
        let message = refused.err().ok_or("accepted")?.to_string();
        assert!(message.contains(says), "{retire:?} {pattern:?}: {message}");
    }
    Ok(())
}
