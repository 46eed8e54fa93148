//! Exchange Online's InvokeCommand: the recipient and mail-contact cmdlets,
//! their refusals in the service's error shape, paging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use coexist_fake_m365::{FakeGroup, FakeMailContact, RecipientType};
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn get_recipient_tells_mailboxes_from_mail_users_and_names_the_graph_id() {
    let ctx = Ctx::start().await;
    let ann = ctx.user("ann", RecipientType::UserMailbox);
    let shared = ctx.user("info", RecipientType::SharedMailbox);
    let room = ctx.user("room1", RecipientType::RoomMailbox);
    let mu = ctx.user("mu", RecipientType::MailUser);
    let unlicensed = ctx.user("nobox", RecipientType::None);
    ctx.m365.add_group(FakeGroup {
        display_name: "Sales".into(),
        mail: "sales@acmecorp.com".into(),
        mail_enabled: true,
        ..FakeGroup::default()
    });
    let rows = ctx
        .cmdlet("Get-Recipient", json!({"ResultSize": "Unlimited"}))
        .await;
    let details = |id: &str| {
        rows.iter()
            .find(|r| r["ExternalDirectoryObjectId"] == id)
            .map(|r| r["RecipientTypeDetails"].as_str().unwrap().to_owned())
    };
    assert_eq!(details(&ann).as_deref(), Some("UserMailbox"));
    assert_eq!(details(&shared).as_deref(), Some("SharedMailbox"));
    assert_eq!(details(&room).as_deref(), Some("RoomMailbox"));
    assert_eq!(details(&mu).as_deref(), Some("MailUser"));
    assert_eq!(details(&unlicensed), None);
    assert!(rows
        .iter()
        .any(|r| r["RecipientTypeDetails"] == "MailUniversalDistributionGroup"));
    let ann_row = rows
        .iter()
        .find(|r| r["ExternalDirectoryObjectId"] == ann.as_str())
        .unwrap();
    assert_eq!(ann_row["PrimarySmtpAddress"], "ann@acmecorp.com");
    assert_eq!(ann_row["Alias"], "ann");
    assert_eq!(
        ann_row["EmailAddresses"][1],
        "smtp:ann@acmecorp.mail.onmicrosoft.com"
    );

    let mailboxes = ctx
        .cmdlet(
            "Get-Recipient",
            json!({"ResultSize": "Unlimited", "RecipientTypeDetails": ["UserMailbox", "SharedMailbox"]}),
        )
        .await;
    assert_eq!(mailboxes.len(), 2);
    let r = ctx
        .invoke(
            "Get-Recipient",
            json!({"RecipientTypeDetails": "Mailboxish"}),
        )
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn new_mail_contact_refuses_primary_smtp_address_as_exchange_online_does() {
    let ctx = Ctx::start().await;
    let r = ctx
        .invoke(
            "New-MailContact",
            json!({"Name": "Bob Stone", "ExternalEmailAddress": "bob@google.acmecorp.com", "PrimarySmtpAddress": "bob@acmecorp.com"}),
        )
        .await;
    let (status, code, message) = exchange_error(r).await;
    assert_eq!((status, code.as_str()), (400, "BadRequest"));
    assert!(
        message.ends_with("|System.Management.Automation.ParameterBindingException|A parameter cannot be found that matches parameter name 'PrimarySmtpAddress'."),
        "{message}"
    );
    assert!(ctx.m365.mail_contacts().is_empty());
}

#[tokio::test]
async fn a_stub_is_created_addressed_marked_described_found_and_removed() {
    let ctx = Ctx::start().await;
    let created = ctx
        .cmdlet(
            "New-MailContact",
            json!({"Name": "Bob Stone", "ExternalEmailAddress": "SMTP:bob@google.acmecorp.com", "DisplayName": "Bob Stone", "FirstName": "Bob", "LastName": "Stone"}),
        )
        .await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0]["ExternalEmailAddress"],
        "SMTP:bob@google.acmecorp.com"
    );
    assert_eq!(created[0]["PrimarySmtpAddress"], "bob@google.acmecorp.com");
    let guid = created[0]["Guid"].as_str().unwrap().to_owned();

    let none = ctx
        .cmdlet(
            "Set-MailContact",
            json!({
                "Identity": guid,
                "EmailAddresses": ["SMTP:bob@acmecorp.com", "smtp:bob.stone@acmecorp.com"],
                "CustomAttribute1": "coexist:google/123",
                "CustomAttribute2": "group",
                "HiddenFromAddressListsEnabled": false,
            }),
        )
        .await;
    assert!(none.is_empty());
    ctx.cmdlet(
        "Set-Contact",
        json!({"Identity": "Bob Stone", "Title": "Engineer", "Department": "R&D", "Company": "Acme", "Phone": "+1 555 0100", "MobilePhone": "+1 555 0101"}),
    )
    .await;

    let found = ctx
        .cmdlet(
            "Get-MailContact",
            json!({"ResultSize": "Unlimited", "Filter": "CustomAttribute1 -like 'coexist:*'"}),
        )
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0]["CustomAttribute2"], "group",
        "kept as Exchange keeps it"
    );
    assert_eq!(found[0]["PrimarySmtpAddress"], "bob@acmecorp.com");
    assert_eq!(found[0]["CustomAttribute1"], "coexist:google/123");
    assert_eq!(
        found[0]["EmailAddresses"],
        json!(["SMTP:bob@acmecorp.com", "smtp:bob.stone@acmecorp.com"])
    );
    let contact = ctx.cmdlet("Get-Contact", json!({"Identity": guid})).await;
    assert_eq!(contact[0]["Title"], "Engineer");
    assert_eq!(contact[0]["FirstName"], "Bob");
    assert_eq!(contact[0]["MobilePhone"], "+1 555 0101");

    // @{Add=…; Remove=…} as a JSON object.
    ctx.cmdlet(
        "Set-MailContact",
        json!({"Identity": "bob@acmecorp.com", "EmailAddresses": {"@odata.type": "#Exchange.GenericHashTable", "add": ["smtp:b.stone@acmecorp.com"], "remove": ["smtp:bob.stone@acmecorp.com"]}}),
    )
    .await;
    let contacts = ctx.m365.mail_contacts();
    assert_eq!(
        contacts[0].email_addresses,
        vec![
            "SMTP:bob@acmecorp.com".to_owned(),
            "smtp:b.stone@acmecorp.com".to_owned()
        ]
    );
    assert_eq!(contacts[0].company, "Acme");

    assert!(ctx
        .cmdlet(
            "Remove-MailContact",
            json!({"Identity": guid, "Confirm": false})
        )
        .await
        .is_empty());
    assert!(ctx.m365.mail_contacts().is_empty());
    let c = ctx.m365.counters();
    assert_eq!(c.exchange_by_cmdlet["Set-MailContact"], 2);
    assert_eq!(c.exchange_by_cmdlet["Remove-MailContact"], 1);
}

#[tokio::test]
async fn removing_an_unknown_identity_answers_management_object_not_found() {
    let ctx = Ctx::start().await;
    let r = ctx
        .invoke(
            "Remove-MailContact",
            json!({"Identity": "ghost@acmecorp.com", "Confirm": false}),
        )
        .await;
    let (status, code, message) = exchange_error(r).await;
    assert_eq!((status, code.as_str()), (404, "NotFound"));
    assert!(message.contains("|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed because object 'ghost@acmecorp.com' couldn't be found"), "{message}");
}

#[tokio::test]
async fn a_name_already_used_is_refused() {
    let ctx = Ctx::start().await;
    ctx.m365.add_mail_contact(FakeMailContact {
        name: "Bob Stone".into(),
        external_email_address: "bob@partner.example".into(),
        ..FakeMailContact::default()
    });
    let r = ctx
        .invoke(
            "New-MailContact",
            json!({"Name": "bob stone", "ExternalEmailAddress": "bob@google.acmecorp.com"}),
        )
        .await;
    let (status, _, message) = exchange_error(r).await;
    assert_eq!(status, 400);
    assert!(
        message.contains(
            "ADObjectAlreadyExistsException|The name \"bob stone\" is already being used."
        ),
        "{message}"
    );
}

#[tokio::test]
async fn an_address_another_recipient_holds_is_a_proxy_address_conflict() {
    let ctx = Ctx::start().await;
    ctx.user("ann", RecipientType::UserMailbox);
    let other = ctx.m365.add_mail_contact(FakeMailContact {
        name: "Partner".into(),
        external_email_address: "partner@partner.example".into(),
        email_addresses: vec!["SMTP:partner@acmecorp.com".into()],
        ..FakeMailContact::default()
    });
    // The mailbox's own address, as a contact's target.
    let r = ctx
        .invoke(
            "New-MailContact",
            json!({"Name": "Ann copy", "ExternalEmailAddress": "ann@acmecorp.com"}),
        )
        .await;
    let (status, _, message) = exchange_error(r).await;
    assert_eq!(status, 400);
    assert!(message.contains("ProxyAddressExistsException|The proxy address \"SMTP:ann@acmecorp.com\" is already being used"), "{message}");

    let created = ctx
        .cmdlet(
            "New-MailContact",
            json!({"Name": "Ann stub", "ExternalEmailAddress": "ann@google.acmecorp.com"}),
        )
        .await;
    let guid = created[0]["Guid"].as_str().unwrap();
    for taken in ["SMTP:ann@acmecorp.com", "SMTP:partner@acmecorp.com"] {
        let r = ctx
            .invoke(
                "Set-MailContact",
                json!({"Identity": guid, "EmailAddresses": [taken]}),
            )
            .await;
        let (status, _, message) = exchange_error(r).await;
        assert_eq!(status, 400, "{taken}");
        assert!(message.contains("ProxyAddressExistsException"), "{message}");
    }
    // The contact's own addresses are no conflict with itself.
    ctx.cmdlet("Set-MailContact", json!({"Identity": other, "EmailAddresses": ["SMTP:partner@acmecorp.com", "smtp:p2@acmecorp.com"]}))
        .await;
}

#[tokio::test]
async fn unknown_cmdlets_and_parameters_fail_as_powershell_does() {
    let ctx = Ctx::start().await;
    let (status, _, message) =
        exchange_error(ctx.invoke("New-Mailbox", json!({"Name": "x"})).await).await;
    assert_eq!(status, 400);
    assert!(
        message.contains("CommandNotFoundException|The term 'New-Mailbox' is not recognized"),
        "{message}"
    );
    let (status, _, message) = exchange_error(
        ctx.invoke("Get-MailContact", json!({"Colour": "blue"}))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        message.ends_with("A parameter cannot be found that matches parameter name 'Colour'."),
        "{message}"
    );
    let (status, _, message) =
        exchange_error(ctx.invoke("New-MailContact", json!({"Name": "x"})).await).await;
    assert_eq!(status, 400);
    assert!(
        message.contains("missing mandatory parameters: ExternalEmailAddress"),
        "{message}"
    );
    let (status, _, _) = exchange_error(
        ctx.invoke(
            "Get-MailContact",
            json!({"Filter": "FavouriteColour -eq 'blue'"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    let r = ctx
        .http
        .post(format!("{}/InvokeCommand", ctx.m365.exchange_url()))
        .bearer_auth(&ctx.exchange_token)
        .json(&json!({"Cmdlet": "Get-Recipient"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn large_results_page_with_a_next_link_and_result_size_warns_when_it_cuts() {
    let ctx = Ctx::start().await;
    ctx.m365.seed_synthetic(2500, 0, 0);
    // Without -ResultSize: the first 1000 and a warning.
    let r = ctx.invoke("Get-Recipient", json!({})).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 1000);
    assert!(body["@adminapi.warnings"][0]
        .as_str()
        .unwrap()
        .contains("-ResultSize Unlimited"));
    assert!(body.get("@odata.nextLink").is_none());

    let input = json!({"CmdletInput": {"CmdletName": "Get-Recipient", "Parameters": {"ResultSize": "Unlimited"}}});
    let mut url = format!("{}/InvokeCommand", ctx.m365.exchange_url());
    let mut rows = 0;
    let mut pages = 0;
    loop {
        let r = ctx
            .http
            .post(&url)
            .bearer_auth(&ctx.exchange_token)
            .header("Prefer", "odata.maxpagesize=1000")
            .json(&input)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        pages += 1;
        rows += body["value"].as_array().unwrap().len();
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!((rows, pages), (2500, 3));
}

#[tokio::test]
async fn accepted_domains_show_their_type() {
    let ctx = Ctx::start().await;
    assert!(ctx
        .m365
        .set_accepted_domain_type("acmecorp.com", "InternalRelay"));
    let rows = ctx.cmdlet("Get-AcceptedDomain", json!({})).await;
    let shared = rows
        .iter()
        .find(|r| r["DomainName"] == "acmecorp.com")
        .unwrap();
    assert_eq!(shared["DomainType"], "InternalRelay");
    assert!(rows
        .iter()
        .any(|r| r["DomainName"] == "acmecorp.mail.onmicrosoft.com"));
}
