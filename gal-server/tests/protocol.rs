#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The server in process, spoken to with `ldap3_proto`'s own codec: what
//! the OpenLDAP clients cannot show, such as a paged search that goes on
//! while the GAL is replaced.

use coexist_gal_server::{Account, GalServer, Password, Settings};
use coexist_model::{Attributes, GalEntry, RecipientKind};
use futures::{SinkExt, StreamExt};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapDerefAliases, LdapFilter, LdapMsg, LdapOp, LdapResultCode,
    LdapSearchRequest, LdapSearchScope,
};
use ldap3_proto::LdapCodec;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

const BASE: &str = "ou=gal,dc=x,dc=com";
const ACCOUNT: &str = "cn=reader,ou=gal,dc=x,dc=com";

fn people(n: usize) -> Vec<GalEntry> {
    (0..n)
        .map(|i| {
            let address = format!("person{i:05}@x.com");
            GalEntry {
                anchor: format!("ldap:{i}"),
                kind: RecipientKind::Person,
                primary_address: address.clone(),
                addresses: vec![address],
                home: "ldap".into(),
                attributes: Attributes {
                    display_name: Some(format!("Person {i:05}")),
                    ..Attributes::default()
                },
                members: Vec::new(),
                systems: vec!["ldap".into()],
                routing_address: None,
            }
        })
        .collect()
}

async fn start(gal: &[GalEntry]) -> (GalServer, Framed<TcpStream, LdapCodec>) {
    let mut settings = Settings::new(BASE);
    settings.accounts = vec![Account {
        dn: ACCOUNT.into(),
        password: Password::new("secret"),
    }];
    settings.size_limit = 100;
    let server = GalServer::new(settings, gal).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    let mut client = Framed::new(
        TcpStream::connect(address).await.unwrap(),
        LdapCodec::default(),
    );
    client
        .send(LdapMsg {
            msgid: 1,
            op: LdapOp::BindRequest(LdapBindRequest {
                version: 3,
                dn: ACCOUNT.into(),
                cred: LdapBindCred::Simple("secret".into()),
            }),
            ctrl: Vec::new(),
        })
        .await
        .unwrap();
    match client.next().await.unwrap().unwrap().op {
        LdapOp::BindResponse(response) => assert_eq!(response.res.code, LdapResultCode::Success),
        other => panic!("a bind response: {other:?}"),
    }
    (server, client)
}

/// One page of a paged subtree search: the entries' DNs, and the cookie
/// for the next page (empty after the last).
async fn page(
    client: &mut Framed<TcpStream, LdapCodec>,
    msgid: i32,
    size: i64,
    cookie: Vec<u8>,
) -> (Vec<String>, Vec<u8>) {
    client
        .send(LdapMsg {
            msgid,
            op: LdapOp::SearchRequest(LdapSearchRequest {
                base: BASE.into(),
                scope: LdapSearchScope::OneLevel,
                aliases: LdapDerefAliases::Never,
                sizelimit: 0,
                timelimit: 0,
                typesonly: false,
                filter: LdapFilter::Present("objectClass".into()),
                attrs: vec!["1.1".into()],
            }),
            ctrl: vec![LdapControl::SimplePagedResults { size, cookie }],
        })
        .await
        .unwrap();
    let mut dns = Vec::new();
    loop {
        let msg = client.next().await.unwrap().unwrap();
        assert_eq!(msg.msgid, msgid);
        match msg.op {
            LdapOp::SearchResultEntry(entry) => dns.push(entry.dn),
            LdapOp::SearchResultDone(result) => {
                assert_eq!(result.code, LdapResultCode::Success, "{}", result.message);
                let cookie = msg
                    .ctrl
                    .into_iter()
                    .find_map(|c| match c {
                        LdapControl::SimplePagedResults { cookie, .. } => Some(cookie),
                        _ => None,
                    })
                    .expect("the paged-results control in the reply");
                return (dns, cookie);
            }
            other => panic!("an entry or the end of the search: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_paged_search_finishes_on_the_gal_it_started_on_while_a_new_one_is_served() {
    let (server, mut client) = start(&people(250)).await;
    let (first, cookie) = page(&mut client, 2, 100, Vec::new()).await;
    assert_eq!(first.len(), 100);
    assert!(!cookie.is_empty());

    server.replace(&people(400));
    assert_eq!(server.len(), 400);

    let mut all = first;
    let mut cookie = cookie;
    let mut msgid = 3;
    while !cookie.is_empty() {
        let (dns, next) = page(&mut client, msgid, 100, cookie).await;
        all.extend(dns);
        cookie = next;
        msgid += 1;
    }
    assert_eq!(all.len(), 250, "the old GAL, whole");
    // A new search sees the new GAL, whole.
    let mut count = 0;
    let mut cookie = Vec::new();
    loop {
        let (dns, next) = page(&mut client, msgid, 100, cookie).await;
        count += dns.len();
        msgid += 1;
        if next.is_empty() {
            break;
        }
        cookie = next;
    }
    assert_eq!(count, 400);
}

#[tokio::test]
async fn a_page_larger_than_the_size_limit_is_cut_to_it_and_a_stale_cookie_is_refused() {
    let (_server, mut client) = start(&people(250)).await;
    let (dns, cookie) = page(&mut client, 2, 1000, Vec::new()).await;
    assert_eq!(dns.len(), 100);
    // Size zero abandons the search (RFC 2696): its cookie is then unknown.
    let (dns, end) = page(&mut client, 3, 0, cookie.clone()).await;
    assert!(dns.is_empty() && end.is_empty());
    client
        .send(LdapMsg {
            msgid: 4,
            op: LdapOp::SearchRequest(LdapSearchRequest {
                base: BASE.into(),
                scope: LdapSearchScope::Subtree,
                aliases: LdapDerefAliases::Never,
                sizelimit: 0,
                timelimit: 0,
                typesonly: false,
                filter: LdapFilter::Present("objectClass".into()),
                attrs: Vec::new(),
            }),
            ctrl: vec![LdapControl::SimplePagedResults { size: 10, cookie }],
        })
        .await
        .unwrap();
    match client.next().await.unwrap().unwrap().op {
        LdapOp::SearchResultDone(result) => {
            assert_eq!(result.code, LdapResultCode::UnwillingToPerform)
        }
        other => panic!("the search refused: {other:?}"),
    }
}
