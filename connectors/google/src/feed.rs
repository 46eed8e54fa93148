//! Reads of the domain's shared contacts feed (`<contacts_url><domain>/full`):
//! the whole feed, one page of it, one contact.
//!
//! Pages followed:
//! * the feed and its paging (`start-index` from 1, `max-results`,
//!   `openSearch:totalResults`, the `rel="next"` link) —
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/contacts-feed>,
//!   <https://developers.google.com/workspace/admin/domain-shared-contacts/retrieve-contacts>;
//! * one contact by id (`<feed>/<id>`), as re-read after a version
//!   conflict — the same "retrieve contacts" page.
//!
//! Every request asks for GData 3.0 (see [`crate::http::GDATA_VERSION`]); the
//! documents are read by [`crate::contacts`].

use std::collections::HashSet;

use coexist_connector::{ConnectorError, Progress};
use futures::stream::{self, StreamExt};

use crate::contacts::{self, ContactEntry, FeedPage};
use crate::directory::Listing;
use crate::http::Request;
use crate::GoogleConnector;

impl GoogleConnector {
    /// Reads the whole shared contacts feed: the first page, then the rest
    /// concurrently when the feed says how many entries it holds.
    pub(crate) async fn read_contacts(&self, progress: &dyn Progress) -> Listing<ContactEntry> {
        let size = self.config.page_size_contacts;
        let mut listing = Listing {
            items: Vec::new(),
            failure: None,
            pages: 0,
        };
        let first = self.contacts_page(1, size).await;
        let first = match first {
            Ok(page) => page,
            Err(error) => {
                listing.failure = Some(error);
                return listing;
            }
        };
        listing.pages = 1;
        progress.advance(first.entries.len() as u64);
        let full = first.entries.len() as u64 >= u64::from(size);
        let mut has_next = first.has_next || (full && first.total_results.is_none());
        let total = first.total_results;
        listing.items.extend(first.entries);
        let mut page_number = 1u64;
        if let (Some(total), true) = (total, has_next || full) {
            let pages = total.div_ceil(u64::from(size)).max(1);
            let results: Vec<_> = stream::iter(2..=pages)
                .map(|n| async move { (n, self.contacts_page(n, size).await) })
                .buffered(self.config.concurrency)
                .collect()
                .await;
            for (n, page) in results {
                match page {
                    Ok(page) => {
                        listing.pages += 1;
                        page_number = n;
                        progress.advance(page.entries.len() as u64);
                        has_next = page.has_next;
                        listing.items.extend(page.entries);
                    }
                    Err(error) => {
                        listing.failure = Some(error);
                        return listing;
                    }
                }
            }
            if page_number == pages {
                // The feed may have grown while it was read: follow it on.
                has_next = has_next && listing.items.len() as u64 >= pages * u64::from(size);
            }
        }
        while has_next {
            page_number += 1;
            match self.contacts_page(page_number, size).await {
                Ok(page) => {
                    listing.pages += 1;
                    progress.advance(page.entries.len() as u64);
                    has_next = page.has_next && !page.entries.is_empty();
                    listing.items.extend(page.entries);
                }
                Err(error) => {
                    listing.failure = Some(error);
                    return listing;
                }
            }
        }
        // Pages read concurrently may overlap if the feed moved.
        let mut seen = HashSet::new();
        listing.items.retain(|entry| seen.insert(entry.id.clone()));
        listing
    }

    /// Reads page `n` (from 1) of the contacts feed.
    pub(crate) async fn contacts_page(
        &self,
        n: u64,
        size: u32,
    ) -> Result<FeedPage, ConnectorError> {
        let what = format!("reading shared contacts page {n}");
        let start = (n - 1) * u64::from(size) + 1;
        let mut url = self.feed_url.clone();
        url.query_pairs_mut()
            .append_pair("start-index", &start.to_string())
            .append_pair("max-results", &size.to_string());
        let reply = self.http.execute(&what, &Request::get(url).gdata()).await?;
        let text = String::from_utf8_lossy(&reply.body);
        contacts::parse_feed(&text).map_err(|e| {
            ConnectorError::permanent(format!("{what}: the answer is not an Atom feed: {e}"))
        })
    }

    /// Reads one contact by id; `None` when it does not exist.
    pub(crate) async fn get_contact(
        &self,
        id: &str,
    ) -> Result<Option<ContactEntry>, ConnectorError> {
        let what = format!("reading shared contact {id}");
        let mut url = self.feed_url.clone();
        url.path_segments_mut()
            .map_err(|_| {
                ConnectorError::permanent(format!("{what}: the feed URL cannot take a path"))
            })?
            .push(id);
        let reply = self
            .http
            .execute(&what, &Request::get(url).gdata().accepting(&[404]))
            .await?;
        if reply.status.as_u16() == 404 {
            return Ok(None);
        }
        contacts::parse_entry(&String::from_utf8_lossy(&reply.body))
            .map(Some)
            .map_err(|e| {
                ConnectorError::permanent(format!("{what}: the answer is not an entry: {e}"))
            })
    }
}
