//! The Domain Shared Contacts API, as
//! https://developers.google.com/workspace/admin/domain-shared-contacts describes it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use coexist_fake_google::FakeContact;
use common::*;
use reqwest::Method;

async fn create(ctx: &Ctx, name: &str, email: &str) -> String {
    let r = ctx
        .gdata(Method::POST, &ctx.feed_url())
        .body(contact_entry(name, email))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.text().await.unwrap()
}

fn batch_feed(entries: &[String]) -> String {
    format!(
        "<?xml version='1.0' encoding='UTF-8'?><feed xmlns='http://www.w3.org/2005/Atom' \
         xmlns:gd='http://schemas.google.com/g/2005' xmlns:batch='http://schemas.google.com/gdata/batch'>{}</feed>",
        entries.concat()
    )
}

fn batch_insert(batch_id: &str, name: &str, email_attr: &str) -> String {
    format!(
        "<entry><batch:id>{batch_id}</batch:id><batch:operation type='insert'/>\
         <gd:name><gd:fullName>{name}</gd:fullName></gd:name><gd:email rel='http://schemas.google.com/g/2005#work' {email_attr}/>\
         <gd:extendedProperty name='coexist' value='{batch_id}'/></entry>"
    )
}

#[tokio::test]
async fn a_created_contact_is_an_atom_entry_with_etag_and_edit_link() {
    let ctx = Ctx::start().await;
    let xml = create(&ctx, "Bob", "bob@acmecorp.com").await;
    let etag = attr(&xml, "<entry", "gd:etag").unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let id_url = between(&xml, "<id", "</id>").unwrap();
    assert!(id_url.starts_with("http://www.google.com/m8/feeds/contacts/acmecorp.com/base/"));
    let edit = attr(&xml, "rel=\"edit\"", "href").unwrap();
    assert!(edit.starts_with(&ctx.feed_url()), "{edit}");
    assert!(xml.contains("<gd:orgDepartment>R&amp;D</gd:orgDepartment>"));

    let stored = ctx.google.contacts();
    assert_eq!(stored.len(), 1);
    let c = &stored[0];
    assert_eq!(c.full_name, "Bob Test");
    assert_eq!(c.emails, vec![("bob@acmecorp.com".to_owned(), true)]);
    assert_eq!(c.phones[0].1, "+1 555 0100");
    assert_eq!(
        (
            c.org_name.as_str(),
            c.org_title.as_str(),
            c.org_department.as_str()
        ),
        ("Acme", "Engineer", "R&D")
    );
    assert_eq!(
        c.extended_properties,
        vec![("coexist".to_owned(), "anchor-bob@acmecorp.com".to_owned())]
    );
    assert_eq!(c.etag, etag);

    let r = ctx
        .gdata(Method::GET, &format!("{}/{}", ctx.feed_url(), c.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn gdata_version_3_is_required() {
    let ctx = Ctx::start().await;
    let without = ctx
        .http
        .get(ctx.feed_url())
        .bearer_auth(&ctx.token)
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 400);
    let wrong = ctx
        .http
        .get(ctx.feed_url())
        .bearer_auth(&ctx.token)
        .header("GData-Version", "2.0")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("<errors xmlns=\"http://schemas.google.com/g/2005\">"));
    let query = ctx
        .http
        .get(format!("{}?v=3.0", ctx.feed_url()))
        .bearer_auth(&ctx.token)
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 200);
    let unauth = ctx
        .http
        .get(ctx.feed_url())
        .header("GData-Version", "3.0")
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    assert_eq!(ctx.google.requests().rejected, 3);
}

#[tokio::test]
async fn updating_needs_the_current_etag_and_changes_it() {
    let ctx = Ctx::start().await;
    let xml = create(&ctx, "Carl", "carl@acmecorp.com").await;
    let etag = attr(&xml, "<entry", "gd:etag").unwrap();
    let id = ctx.google.contacts()[0].id.clone();
    let url = format!("{}/{id}", ctx.feed_url());

    let no_etag = ctx
        .gdata(Method::PUT, &url)
        .body(contact_entry("Carl2", "carl@acmecorp.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_etag.status(), 403);
    let stale = ctx
        .gdata(Method::PUT, &url)
        .header("If-Match", "\"stale\"")
        .body(contact_entry("Carl2", "carl@acmecorp.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);

    let ok = ctx
        .gdata(Method::PUT, &url)
        .header("If-Match", &etag)
        .body(contact_entry("Carl2", "carl@acmecorp.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let updated = ok.text().await.unwrap();
    let new_etag = attr(&updated, "<entry", "gd:etag").unwrap();
    assert_ne!(new_etag, etag);
    assert_eq!(ctx.google.contacts()[0].given_name, "Carl2");

    // The old edit link (old version) conflicts; `*` overrides.
    let old_edit = attr(&xml, "rel=\"edit\"", "href").unwrap();
    let conflict = ctx
        .gdata(Method::PUT, &old_edit)
        .body(contact_entry("Carl3", "carl@acmecorp.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status(), 409);
    let star = ctx
        .gdata(Method::DELETE, &url)
        .header("If-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(star.status(), 200);
    assert!(ctx.google.contacts().is_empty());
    assert_eq!(
        ctx.gdata(Method::GET, &url).send().await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn the_feed_pages_with_start_index_and_max_results() {
    let ctx = Ctx::start().await;
    for i in 0..60 {
        ctx.google.add_contact(FakeContact {
            full_name: format!("Person {i}"),
            emails: vec![(format!("p{i}@example.org"), true)],
            ..FakeContact::default()
        });
    }
    let mut seen = Vec::new();
    let mut url = format!("{}?max-results=25&start-index=1", ctx.feed_url());
    loop {
        let xml = ctx
            .gdata(Method::GET, &url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            between(&xml, "<openSearch:totalResults", "</").unwrap(),
            "60"
        );
        seen.extend(xml.matches("<entry").map(|_| ()));
        match attr(&xml, "rel=\"next\"", "href") {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), 60);
    assert_eq!(ctx.google.requests().contacts_feed, 3);

    let xml = ctx
        .gdata(
            Method::GET,
            &format!("{}?start-index=51&max-results=25", ctx.feed_url()),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(xml.matches("<entry").count(), 10);
    assert_eq!(between(&xml, "<openSearch:startIndex", "</").unwrap(), "51");
    // The default page is 25 entries.
    let xml = ctx
        .gdata(Method::GET, &ctx.feed_url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(xml.matches("<entry").count(), 25);
    for bad in [
        "start-index=0",
        "max-results=-1",
        "updated-min=yesterday",
        "colour=red",
    ] {
        let r = ctx
            .gdata(Method::GET, &format!("{}?{bad}", ctx.feed_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn updated_min_and_showdeleted_give_incremental_reads() {
    let ctx = Ctx::start().await;
    let keep = ctx.google.add_contact(FakeContact {
        full_name: "Keep".into(),
        ..FakeContact::default()
    });
    let gone = ctx.google.add_contact(FakeContact {
        full_name: "Gone".into(),
        ..FakeContact::default()
    });
    let _ = keep;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mark = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = ctx
        .gdata(Method::DELETE, &format!("{}/{gone}", ctx.feed_url()))
        .header("If-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    ctx.google.add_contact(FakeContact {
        full_name: "New".into(),
        ..FakeContact::default()
    });

    let url = format!(
        "{}?updated-min={}&showdeleted=true",
        ctx.feed_url(),
        mark.replace('+', "%2B")
    );
    let xml = ctx
        .gdata(Method::GET, &url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(xml.matches("<entry").count(), 2, "{xml}");
    assert!(xml.contains("<gd:deleted/>"));
    assert!(xml.contains("<title>New</title>"));
    let url = format!(
        "{}?updated-min={}",
        ctx.feed_url(),
        mark.replace('+', "%2B")
    );
    let xml = ctx
        .gdata(Method::GET, &url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(xml.matches("<entry").count(), 1);
}

#[tokio::test]
async fn a_batch_answers_each_operation_and_one_bad_entry_fails_alone() {
    let ctx = Ctx::start().await;
    let existing = ctx.google.add_contact(FakeContact {
        full_name: "Old".into(),
        ..FakeContact::default()
    });
    let existing_etag = ctx.google.contacts()[0].etag.clone();
    let atom_id = format!("http://www.google.com/m8/feeds/contacts/acmecorp.com/base/{existing}");
    let entries = vec![
        batch_insert("ok-1", "One", "address='one@example.org' primary='true'"),
        batch_insert("bad", "Two", "primary='true'"), // gd:email without address
        batch_insert("ok-3", "Three", "address='three@example.org'"),
        format!("<entry><batch:id>q</batch:id><batch:operation type='query'/><id>{atom_id}</id></entry>"),
        format!("<entry><batch:id>missing</batch:id><batch:operation type='delete'/><id>{atom_id}ffff</id></entry>"),
        format!(
            "<entry gd:etag='{}'><batch:id>upd</batch:id><batch:operation type='update'/><id>{atom_id}</id>\
             <gd:name><gd:fullName>Renamed</gd:fullName></gd:name></entry>",
            existing_etag.replace('"', "&quot;")
        ),
    ];
    let r = ctx
        .gdata(Method::POST, &format!("{}/batch", ctx.feed_url()))
        .body(batch_feed(&entries))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let xml = r.text().await.unwrap();
    let status_of = |batch_id: &str| -> String {
        let at = xml
            .find(&format!("<batch:id>{batch_id}</batch:id>"))
            .unwrap();
        attr(&xml[at..], "<batch:status", "code").unwrap()
    };
    assert_eq!(status_of("ok-1"), "201");
    assert_eq!(status_of("bad"), "400");
    assert_eq!(status_of("ok-3"), "201");
    assert_eq!(status_of("q"), "200");
    assert_eq!(status_of("missing"), "404");
    assert_eq!(status_of("upd"), "200");
    let contacts = ctx.google.contacts();
    assert_eq!(contacts.len(), 3);
    assert!(contacts.iter().any(|c| c.full_name == "Renamed"));
    assert_eq!(ctx.google.requests().contacts_batch, 1);
}

#[tokio::test]
async fn a_batch_of_more_than_100_operations_is_refused() {
    let ctx = Ctx::start().await;
    let hundred: Vec<String> = (0..100)
        .map(|i| batch_insert(&i.to_string(), "N", &format!("address='n{i}@example.org'")))
        .collect();
    let r = ctx
        .gdata(Method::POST, &format!("{}/batch", ctx.feed_url()))
        .body(batch_feed(&hundred))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(ctx.google.contacts().len(), 100);
    let mut too_many = hundred.clone();
    too_many.push(batch_insert("101", "N", "address='x@example.org'"));
    let r = ctx
        .gdata(Method::POST, &format!("{}/batch", ctx.feed_url()))
        .body(batch_feed(&too_many))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(ctx.google.contacts().len(), 100);
}

#[tokio::test]
async fn contacts_over_2kb_or_over_the_domain_maximum_are_refused() {
    let ctx = Ctx::start().await;
    let big = contact_entry(&"x".repeat(2100), "big@example.org");
    let r = ctx
        .gdata(Method::POST, &ctx.feed_url())
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    ctx.google.set_max_contacts(2);
    create(&ctx, "A", "a@example.org").await;
    create(&ctx, "B", "b@example.org").await;
    let r = ctx
        .gdata(Method::POST, &ctx.feed_url())
        .body(contact_entry("C", "c@example.org"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(ctx.google.contacts().len(), 2);
}

#[tokio::test]
async fn malformed_documents_and_other_domains_are_refused() {
    let ctx = Ctx::start().await;
    let r = ctx
        .gdata(Method::POST, &ctx.feed_url())
        .body("<entry")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = ctx
        .http
        .post(ctx.feed_url())
        .bearer_auth(&ctx.token)
        .header("GData-Version", "3.0")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let other = format!("{}example.org/full", ctx.google.contacts_url());
    assert_eq!(
        ctx.gdata(Method::GET, &other)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
}
