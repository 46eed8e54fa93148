//! Deltas of nested groups: a change of a group nested in others (a member
//! added or removed, a member deleted, the nested group itself deleted)
//! reaches every group containing it at the next delta, not only at the
//! next full read; a cursor written before the nesting was kept leads to
//! one full read.

mod common;

use coexist_connector::{Connector, NoProgress, Pull, PullMode, Recipient};
use coexist_fake_m365::{FakeGroup, FakeM365, Fault, RecipientType};
use common::{setup, user, Setup, TestResult};

/// A mail-enabled distribution list.
fn list(name: &str) -> FakeGroup {
    FakeGroup {
        display_name: name.to_string(),
        mail: format!("{}@acmecorp.com", name.to_lowercase()),
        mail_enabled: true,
        ..FakeGroup::default()
    }
}

/// The recipient anchored at `anchor`, or an error naming it.
fn recipient<'a>(pull: &'a Pull, anchor: &str) -> Result<&'a Recipient, String> {
    pull.recipients
        .iter()
        .find(|r| r.anchor == anchor)
        .ok_or_else(|| format!("{anchor} is not returned: {:?}", anchors(pull)))
}

fn anchors(pull: &Pull) -> Vec<&str> {
    pull.recipients.iter().map(|r| r.anchor.as_str()).collect()
}

/// The tenant of the tests: `company` ⊃ `all` ⊃ `sales` ⊃ ann, with carl
/// directly in `all`; bob and dave in no group.
struct Tenant {
    ann: String,
    bob: String,
    sales: String,
    all: String,
    company: String,
}

fn seed(m365: &FakeM365) -> Tenant {
    let ann = m365.add_user(user("ann", "ann", RecipientType::UserMailbox));
    let bob = m365.add_user(user("bob", "bob", RecipientType::UserMailbox));
    let carl = m365.add_user(user("carl", "carl", RecipientType::UserMailbox));
    m365.add_user(user("dave", "dave", RecipientType::UserMailbox));
    let sales = m365.add_group(list("Sales"));
    let all = m365.add_group(list("All"));
    let company = m365.add_group(list("Company"));
    m365.add_member(&sales, &ann);
    m365.add_member(&all, &sales);
    m365.add_member(&all, &carl);
    m365.add_member(&company, &all);
    Tenant {
        ann,
        bob,
        sales,
        all,
        company,
    }
}

async fn delta(s: &Setup, cursor: Option<&str>) -> Result<Pull, Box<dyn std::error::Error>> {
    let pull = s.connector.pull(cursor, &NoProgress).await?;
    assert_eq!(pull.mode, PullMode::Delta);
    assert!(pull.complete, "{:?}", pull.problems);
    Ok(pull)
}

#[tokio::test]
async fn a_nested_group_gaining_and_losing_a_member_changes_every_group_containing_it() -> TestResult
{
    let s = setup().await?;
    let t = seed(&s.m365);
    let full = s.connector.pull(None, &NoProgress).await?;
    assert_eq!(
        recipient(&full, &t.company)?.members,
        ["ann@acmecorp.com", "carl@acmecorp.com"]
    );

    s.m365.add_member(&t.sales, &t.bob);
    s.m365.reset_counters();
    let gained = delta(&s, full.cursor.as_deref()).await?;

    assert_eq!(
        recipient(&gained, &t.sales)?.members,
        ["ann@acmecorp.com", "bob@acmecorp.com"]
    );
    for parent in [&t.all, &t.company] {
        assert_eq!(
            recipient(&gained, parent)?.members,
            ["ann@acmecorp.com", "bob@acmecorp.com", "carl@acmecorp.com"],
            "a group containing the changed group, directly or not"
        );
    }
    let all = recipient(&gained, &t.all)?;
    assert_eq!(all.primary_address, "all@acmecorp.com");
    assert_eq!(all.attributes.display_name.as_deref(), Some("All"));
    assert_eq!(gained.recipients.len(), 3, "{:?}", anchors(&gained));
    assert!(gained.removed.is_empty(), "{:?}", gained.removed);
    let c = s.m365.counters();
    assert_eq!(
        (c.graph_requests, c.batch_requests),
        (3, 1),
        "two delta pages, then one $batch for the changed group and its parents"
    );

    s.m365.remove_member(&t.sales, &t.ann);
    let lost = delta(&s, gained.cursor.as_deref()).await?;

    assert_eq!(recipient(&lost, &t.sales)?.members, ["bob@acmecorp.com"]);
    for parent in [&t.all, &t.company] {
        assert_eq!(
            recipient(&lost, parent)?.members,
            ["bob@acmecorp.com", "carl@acmecorp.com"]
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_member_deleted_from_the_tenant_leaves_the_groups_containing_its_group() -> TestResult {
    let s = setup().await?;
    let t = seed(&s.m365);
    let full = s.connector.pull(None, &NoProgress).await?;

    s.m365.remove_user(&t.ann);
    let pull = delta(&s, full.cursor.as_deref()).await?;

    assert_eq!(pull.removed, std::slice::from_ref(&t.ann));
    assert!(recipient(&pull, &t.sales)?.members.is_empty());
    for parent in [&t.all, &t.company] {
        assert_eq!(recipient(&pull, parent)?.members, ["carl@acmecorp.com"]);
    }
    Ok(())
}

#[tokio::test]
async fn a_nested_group_deleted_takes_its_members_out_of_the_groups_containing_it() -> TestResult {
    let s = setup().await?;
    let t = seed(&s.m365);
    let full = s.connector.pull(None, &NoProgress).await?;

    s.m365.remove_group(&t.sales);
    let pull = delta(&s, full.cursor.as_deref()).await?;

    assert_eq!(pull.removed, std::slice::from_ref(&t.sales));
    for parent in [&t.all, &t.company] {
        assert_eq!(recipient(&pull, parent)?.members, ["carl@acmecorp.com"]);
    }

    // The deleted group is gone from what the cursor keeps: a later change
    // of `all` reaches `company` alone.
    s.m365.add_member(&t.all, &t.bob);
    let next = delta(&s, pull.cursor.as_deref()).await?;
    let mut changed = anchors(&next);
    changed.sort_unstable();
    let mut expected = vec![t.all.as_str(), t.company.as_str()];
    expected.sort_unstable();
    assert_eq!(changed, expected);
    assert_eq!(
        recipient(&next, &t.company)?.members,
        ["bob@acmecorp.com", "carl@acmecorp.com"]
    );
    Ok(())
}

#[tokio::test]
async fn a_group_nested_after_the_full_read_is_followed_by_later_deltas() -> TestResult {
    let s = setup().await?;
    let t = seed(&s.m365);
    let full = s.connector.pull(None, &NoProgress).await?;

    // A new team, nested in `sales` by a delta the cursor then remembers.
    let team = s.m365.add_group(FakeGroup {
        display_name: "Team (security only)".into(),
        security_enabled: true,
        ..FakeGroup::default()
    });
    s.m365.add_member(&t.sales, &team);
    let nested = delta(&s, full.cursor.as_deref()).await?;
    assert_eq!(
        recipient(&nested, &t.company)?.members,
        ["ann@acmecorp.com", "carl@acmecorp.com"]
    );

    s.m365.add_member(&team, &t.bob);
    let pull = delta(&s, nested.cursor.as_deref()).await?;

    for group in [&t.sales, &t.all, &t.company] {
        assert!(
            recipient(&pull, group)?
                .members
                .contains(&"bob@acmecorp.com".to_string()),
            "a member of a group without mail, nested in {group}"
        );
    }
    assert!(
        !anchors(&pull).contains(&team.as_str()),
        "a group without mail is no recipient"
    );
    assert_eq!(
        recipient(&pull, &t.all)?.members,
        ["ann@acmecorp.com", "bob@acmecorp.com", "carl@acmecorp.com"]
    );
    Ok(())
}

#[tokio::test]
async fn a_cursor_from_before_the_nesting_was_kept_leads_to_one_full_read() -> TestResult {
    let s = setup().await?;
    let t = seed(&s.m365);
    let full = s.connector.pull(None, &NoProgress).await?;
    // The cursor as the previous version wrote it: format 1, the delta
    // links only.
    let mut old: serde_json::Value = serde_json::from_str(full.cursor.as_deref().ok_or("cursor")?)?;
    let fields = old.as_object_mut().ok_or("the cursor is an object")?;
    fields.retain(|k, _| ["tenant", "users", "groups"].contains(&k.as_str()));
    fields.insert("format".into(), 1.into());
    let old = old.to_string();

    s.m365.add_member(&t.sales, &t.bob);
    let again = s.connector.pull(Some(&old), &NoProgress).await?;

    assert_eq!(again.mode, PullMode::Full);
    assert!(again.complete);
    assert_eq!(
        recipient(&again, &t.company)?.members,
        ["ann@acmecorp.com", "bob@acmecorp.com", "carl@acmecorp.com"]
    );
    s.m365.remove_member(&t.sales, &t.ann);
    let next = delta(&s, again.cursor.as_deref()).await?;
    assert_eq!(
        recipient(&next, &t.company)?.members,
        ["bob@acmecorp.com", "carl@acmecorp.com"]
    );
    Ok(())
}

#[tokio::test]
async fn a_delta_that_could_not_read_the_containing_groups_is_read_again() -> TestResult {
    let s = setup().await?;
    let t = seed(&s.m365);
    let full = s.connector.pull(None, &NoProgress).await?;

    s.m365.add_member(&t.sales, &t.bob);
    s.m365.fail_next_in_batch(1_000, Fault::ServerError500);
    let failed = s
        .connector
        .pull(full.cursor.as_deref(), &NoProgress)
        .await?;
    s.m365.clear_faults();

    assert!(!failed.complete, "the members could not be read");
    assert_eq!(
        failed.cursor, full.cursor,
        "the same links, and the nesting as of them"
    );
    assert!(anchors(&failed).is_empty(), "{:?}", anchors(&failed));
    let again = delta(&s, failed.cursor.as_deref()).await?;
    assert_eq!(
        recipient(&again, &t.company)?.members,
        ["ann@acmecorp.com", "bob@acmecorp.com", "carl@acmecorp.com"]
    );
    Ok(())
}

#[tokio::test]
async fn a_nested_group_renamed_changes_no_other_group() -> TestResult {
    let s = setup().await?;
    let t = seed(&s.m365);
    let full = s.connector.pull(None, &NoProgress).await?;

    s.m365
        .update_group(&t.sales, |g| g.display_name = "Sales EMEA".into());
    s.m365.reset_counters();
    let pull = delta(&s, full.cursor.as_deref()).await?;

    assert_eq!(anchors(&pull), [t.sales.as_str()]);
    let c = s.m365.counters();
    assert_eq!(
        (c.graph_requests, c.inner_batch_requests),
        (3, 1),
        "its own members only: a group's address is no member address of the groups containing it"
    );
    Ok(())
}
