//! Mailbox contact folders and personal contacts, bodies checked against the
//! CSDL's `contact` type.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use coexist_fake_m365::RecipientType;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn a_contact_is_created_read_updated_and_deleted_in_a_folder() {
    let ctx = Ctx::start().await;
    let ann = ctx.user("ann", RecipientType::UserMailbox);
    let r = ctx
        .send(
            Method::POST,
            &format!("/users/{ann}/contactFolders"),
            &json!({"displayName": "coexist"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let folder: Value = r.json().await.unwrap();
    let fid = folder["id"].as_str().unwrap().to_owned();
    assert_eq!(
        ctx.m365.contact_folders(&ann),
        vec![(fid.clone(), "coexist".to_owned())]
    );

    let r = ctx
        .send(
            Method::POST,
            &format!("/users/{ann}/contactFolders/{fid}/contacts"),
            &json!({
                "givenName": "Bob",
                "surname": "Stone",
                "displayName": "Bob Stone",
                "emailAddresses": [{"name": "Bob Stone", "address": "bob@acmecorp.com"}],
                "jobTitle": "Engineer",
                "department": "R&D",
                "companyName": "Acme",
                "businessPhones": ["+1 555 0100"],
                "mobilePhone": "+1 555 0101",
            }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let cid = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["parentFolderId"], fid.as_str());
    // Unset properties are there, null or empty, as Graph shows them.
    assert!(created["homePhones"].as_array().unwrap().is_empty());
    assert!(created["nickName"].is_null());

    let path = format!("/users/{ann}/contactFolders/{fid}/contacts/{cid}");
    let r = ctx
        .send(
            Method::PATCH,
            &path,
            &json!({"jobTitle": "CTO", "mobilePhone": null}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let got = ctx
        .get_json(&format!("{path}?$select=jobTitle,givenName"))
        .await;
    assert_eq!(got["jobTitle"], "CTO");
    assert_eq!(got["givenName"], "Bob");
    assert!(got.get("surname").is_none());

    let stored = ctx.m365.personal_contacts(&ann);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].email_addresses,
        vec![("Bob Stone".to_owned(), "bob@acmecorp.com".to_owned())]
    );
    assert_eq!(stored[0].business_phones, vec!["+1 555 0100".to_owned()]);
    assert_eq!(stored[0].mobile_phone, "");

    let listed = ctx
        .get_json(&format!("/users/{ann}/contactFolders/{fid}/contacts"))
        .await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);

    let r = ctx
        .http
        .delete(format!("{}{path}", ctx.m365.graph_url()))
        .bearer_auth(&ctx.graph_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(ctx.m365.personal_contacts(&ann).is_empty());
    let (status, code, _) = graph_error(ctx.get(&path).await).await;
    assert_eq!((status, code.as_str()), (404, "ErrorItemNotFound"));
}

#[tokio::test]
async fn an_unknown_contact_property_is_refused_with_request_body_read() {
    let ctx = Ctx::start().await;
    let ann = ctx.user("ann", RecipientType::UserMailbox);
    let folder: Value = ctx
        .send(
            Method::POST,
            &format!("/users/{ann}/contactFolders"),
            &json!({"displayName": "coexist"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!(
        "/users/{ann}/contactFolders/{}/contacts",
        folder["id"].as_str().unwrap()
    );
    let (status, code, message) = graph_error(
        ctx.send(Method::POST, &path, &json!({"firstName": "Bob"}))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "RequestBodyRead"));
    assert_eq!(
        message,
        "The property 'firstName' does not exist on type 'Microsoft.OutlookServices.Contact'. Make sure to only use property names that are defined by the type or mark the type as open type."
    );
    // Nested values are checked against their complex type.
    let r = ctx
        .send(
            Method::POST,
            &path,
            &json!({"emailAddresses": [{"address": "a@b.example", "type": "work"}]}),
        )
        .await;
    let (_, code, message) = graph_error(r).await;
    assert_eq!(code, "RequestBodyRead");
    assert!(
        message.contains("'type'") && message.contains("EmailAddress"),
        "{message}"
    );
    // A collection must be a collection.
    let (status, _, _) = graph_error(
        ctx.send(Method::POST, &path, &json!({"businessPhones": "+1 555"}))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(ctx.m365.personal_contacts(&ann).is_empty());
}

#[tokio::test]
async fn a_second_folder_of_the_same_name_is_a_conflict() {
    let ctx = Ctx::start().await;
    let ann = ctx.user("ann", RecipientType::UserMailbox);
    let path = format!("/users/{ann}/contactFolders");
    assert_eq!(
        ctx.send(Method::POST, &path, &json!({"displayName": "coexist"}))
            .await
            .status(),
        201
    );
    let (status, code, _) = graph_error(
        ctx.send(Method::POST, &path, &json!({"displayName": "Coexist"}))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (409, "ErrorFolderExists"));
    let listed = ctx
        .get_json(&format!("{path}?$filter=displayName%20eq%20'coexist'"))
        .await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_user_without_a_mailbox_has_no_contact_folders() {
    let ctx = Ctx::start().await;
    let mail_user = ctx.user("mu", RecipientType::MailUser);
    let (status, code, _) =
        graph_error(ctx.get(&format!("/users/{mail_user}/contactFolders")).await).await;
    assert_eq!(
        (status, code.as_str()),
        (404, "MailboxNotEnabledForRESTAPI")
    );
    let (status, code, _) =
        graph_error(ctx.get("/users/ghost@acmecorp.com/contactFolders").await).await;
    assert_eq!((status, code.as_str()), (404, "ErrorInvalidUser"));
}

#[tokio::test]
async fn contacts_page_ten_at_a_time_by_default_with_skip_in_the_next_link() {
    let ctx = Ctx::start().await;
    let ann = ctx.user("ann", RecipientType::UserMailbox);
    let folder: Value = ctx
        .send(
            Method::POST,
            &format!("/users/{ann}/contactFolders"),
            &json!({"displayName": "coexist"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!(
        "/users/{ann}/contactFolders/{}/contacts",
        folder["id"].as_str().unwrap()
    );
    for i in 0..23 {
        let r = ctx
            .send(Method::POST, &path, &json!({"givenName": format!("P{i}")}))
            .await;
        assert_eq!(r.status(), 201);
    }
    let first = ctx.get_json(&path).await;
    assert_eq!(first["value"].as_array().unwrap().len(), 10);
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(next.contains("$skip=10"), "{next}");
    let all = ctx.get_json(&format!("{path}?$top=1000")).await;
    assert_eq!(all["value"].as_array().unwrap().len(), 23);
    assert!(all.get("@odata.nextLink").is_none());
    assert_eq!(
        graph_error(ctx.get(&format!("{path}?$top=1001")).await)
            .await
            .0,
        400
    );
}
