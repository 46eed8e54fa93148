//! coexist's existing shared contacts, by anchor: the index that turns the
//! engine's operations into the right Domain Shared Contacts requests.
//!
//! The engine names a stub by its anchor; Google names a contact by its id,
//! and an update or delete goes to the contact's edit link with its etag
//! (<https://developers.google.com/workspace/admin/domain-shared-contacts/update-contacts>,
//! <https://developers.google.com/workspace/admin/domain-shared-contacts/delete-contacts>:
//! the etag makes the write conditional, so a contact changed since it was
//! read is refused with 409 / 412 instead of overwritten). The index holds,
//! for the contacts that carry coexist's marker, anchor → contact id and
//! contact id → (edit link, etag), from the last complete read of the feed
//! and every write since. With it a create of an anchor that already has a
//! contact becomes an update of that contact, and updates and deletes carry
//! the newest edit link and etag.
//!
//! A pull fills it as a side effect; an apply without a pull in this
//! process reads the feed first ([`GoogleConnector::ensure_index`]).

use std::collections::HashMap;

use coexist_connector::ConnectorError;

use crate::contacts::ContactEntry;
use crate::GoogleConnector;

/// A contact's edit link and etag: where and at which version it is written.
pub(crate) type Version = (String, Option<String>);

/// Where coexist's contacts are, from the last read of the feed and the
/// writes since: makes a create of an anchor that already has a contact an
/// update, and gives updates and deletes the newest edit link and etag.
#[derive(Debug, Default)]
pub(crate) struct ContactIndex {
    /// Whether a complete read of the feed filled the index.
    loaded: bool,
    /// anchor → contact id.
    by_anchor: HashMap<String, String>,
    /// contact id → (edit link, etag).
    by_id: HashMap<String, Version>,
}

impl ContactIndex {
    /// Takes in the contacts of a read of the feed; a `complete` read
    /// replaces what the index held and marks it loaded. Contacts without
    /// coexist's marker (`marker_property`), an id or an edit link are left
    /// out.
    pub(crate) fn load(&mut self, entries: &[ContactEntry], complete: bool, marker_property: &str) {
        if complete {
            *self = ContactIndex::default();
            self.loaded = true;
        }
        for entry in entries {
            let (Some(anchor), Some(edit_link)) =
                (entry.anchor(marker_property), entry.edit_link.as_deref())
            else {
                continue;
            };
            if entry.id.is_empty() {
                continue;
            }
            if self.by_anchor.contains_key(anchor) && complete {
                // Two contacts with one anchor: the first one is updated; the
                // engine sees both stubs and removes the extra one.
                self.set_version(&entry.id, edit_link, entry.etag.clone());
                continue;
            }
            self.record(anchor, &entry.id, edit_link, entry.etag.clone());
        }
    }

    /// Whether a complete read of the feed filled the index.
    pub(crate) fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// The contact that holds `anchor`, with its edit link and etag.
    pub(crate) fn contact_of(&self, anchor: &str) -> Option<(&String, &Version)> {
        self.by_anchor
            .get(anchor)
            .and_then(|id| self.by_id.get(id).map(|version| (id, version)))
    }

    /// The edit link and etag of contact `id`, when known.
    pub(crate) fn version(&self, id: &str) -> Option<&Version> {
        self.by_id.get(id)
    }

    /// Records that contact `id` holds `anchor`, at `edit_link` / `etag`.
    pub(crate) fn record(&mut self, anchor: &str, id: &str, edit_link: &str, etag: Option<String>) {
        self.by_anchor.insert(anchor.to_string(), id.to_string());
        self.set_version(id, edit_link, etag);
    }

    /// Records the edit link and etag of contact `id`, leaving the anchors
    /// alone.
    pub(crate) fn set_version(&mut self, id: &str, edit_link: &str, etag: Option<String>) {
        self.by_id
            .insert(id.to_string(), (edit_link.to_string(), etag));
    }

    /// Forgets which contact holds `anchor` (an update moved the contact to
    /// another anchor).
    pub(crate) fn forget_anchor(&mut self, anchor: &str) {
        self.by_anchor.remove(anchor);
    }

    /// Forgets contact `id` (deleted, or gone).
    pub(crate) fn forget(&mut self, id: &str) {
        self.by_id.remove(id);
        self.by_anchor.retain(|_, contact| contact != id);
    }
}

impl GoogleConnector {
    /// Fills the contact index from the feed when no complete read did yet
    /// (an apply without a pull in this process).
    pub(crate) async fn ensure_index(&self) -> Result<(), ConnectorError> {
        if self.index.lock().await.is_loaded() {
            return Ok(());
        }
        let listing = self.read_contacts(&coexist_connector::NoProgress).await;
        if let Some(error) = listing.failure {
            return Err(error);
        }
        self.load_index(&listing.items, true).await;
        Ok(())
    }

    /// Takes the contacts of a read of the feed into the index (see
    /// [`ContactIndex::load`]).
    pub(crate) async fn load_index(&self, entries: &[ContactEntry], complete: bool) {
        self.index
            .lock()
            .await
            .load(entries, complete, &self.config.marker_property);
    }
}
