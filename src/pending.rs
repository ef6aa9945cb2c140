//! The table of requests waiting for their outcome: ids, what they were, how often they
//! were sent, their deadlines, and whatever settles them (`T` = the JS promise's settle
//! functions in the browser, anything in native tests). One timer serves the whole
//! table: the browser layer arms it for [`Pending::next_deadline`].

use crate::error::ErrorAction;
use hms_protocol::ClientCall;

/// What a pending request was, so its answer is applied the right way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `join`: settled after the answer, the policy and the peer list.
    Join,
    /// `end-room`: on success the client leaves.
    EndRoom,
    /// `peer-leave-request`.
    RemovePeer,
    /// `find-peer` / `peer-iter-next`: settled with the page.
    PeerPage,
}

impl Kind {
    /// The `action` of errors that settle it.
    pub fn action(self) -> ErrorAction {
        match self {
            Kind::Join => ErrorAction::Join,
            Kind::EndRoom => ErrorAction::EndRoom,
            Kind::RemovePeer => ErrorAction::RemovePeer,
            Kind::PeerPage => ErrorAction::PeerList,
        }
    }
}

/// One waiting request.
#[derive(Debug)]
pub struct Entry<T> {
    /// The JSON-RPC id of its latest send.
    pub id: String,
    /// Ids of earlier sends of the same request (an `endRoom` re-sent after a
    /// reconnect): an answer to any of them settles it.
    pub old_ids: Vec<String>,
    /// What it was.
    pub kind: Kind,
    /// The peer a `removePeer` is for (one request per peer at a time).
    pub target: Option<String>,
    /// The frame to send (`None` for `join`, whose params the session keeps).
    pub call: Option<ClientCall>,
    /// How often it was sent; 0 while queued (made while reconnecting).
    pub sends: u8,
    /// When it times out, in ms on the caller's clock; `None` while it waits for a
    /// reconnect to learn its outcome.
    pub deadline: Option<f64>,
    /// What settles it.
    pub settle: T,
}

impl<T> Entry<T> {
    /// A request not sent yet.
    pub fn new(id: String, kind: Kind, call: Option<ClientCall>, deadline: f64, settle: T) -> Self {
        Self { id, old_ids: Vec::new(), kind, target: None, call, sends: 0, deadline: Some(deadline), settle }
    }

    fn answers_to(&self, id: &str) -> bool {
        self.id == id || self.old_ids.iter().any(|o| o == id)
    }
}

/// Waiting requests in the order they were made.
#[derive(Debug)]
pub struct Pending<T> {
    entries: Vec<Entry<T>>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self { entries: Vec::new() }
    }
}

impl<T> Pending<T> {
    /// Adds a request.
    pub fn insert(&mut self, entry: Entry<T>) {
        self.entries.push(entry);
    }

    /// Removes and returns the request that `id` answers, if it is waiting.
    pub fn take(&mut self, id: &str) -> Option<Entry<T>> {
        let i = self.entries.iter().position(|e| e.answers_to(id))?;
        Some(self.entries.remove(i))
    }

    /// The request that `id` answers.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Entry<T>> {
        self.entries.iter_mut().find(|e| e.answers_to(id))
    }

    /// The waiting request of `kind` (for `target`, when given).
    pub fn find(&self, kind: Kind, target: Option<&str>) -> Option<&Entry<T>> {
        self.entries.iter().find(|e| e.kind == kind && (target.is_none() || e.target.as_deref() == target))
    }

    /// Removes and returns the first request of `kind`.
    pub fn take_kind(&mut self, kind: Kind) -> Option<Entry<T>> {
        let i = self.entries.iter().position(|e| e.kind == kind)?;
        Some(self.entries.remove(i))
    }

    /// Every waiting request, in order, to update.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Entry<T>> {
        self.entries.iter_mut()
    }

    /// Removes and returns the requests `f` picks, keeping the others in order.
    pub fn take_where(&mut self, mut f: impl FnMut(&Entry<T>) -> bool) -> Vec<Entry<T>> {
        let (taken, kept) = std::mem::take(&mut self.entries).into_iter().partition(|e| f(e));
        self.entries = kept;
        taken
    }

    /// Removes and returns every request whose deadline is at or before `now`.
    pub fn take_expired(&mut self, now: f64) -> Vec<Entry<T>> {
        self.take_where(|e| e.deadline.is_some_and(|d| d <= now))
    }

    /// Removes and returns everything (when the session ends).
    pub fn drain(&mut self) -> Vec<Entry<T>> {
        std::mem::take(&mut self.entries)
    }

    /// The earliest deadline, for the one timer.
    pub fn next_deadline(&self) -> Option<f64> {
        self.entries.iter().filter_map(|e| e.deadline).reduce(f64::min)
    }

    /// How many are waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_by_id_old_id_and_expiry() {
        let mut p = Pending::default();
        p.insert(Entry::new("a".into(), Kind::EndRoom, None, 100.0, 1));
        p.insert(Entry::new("b".into(), Kind::RemovePeer, None, 50.0, 2));
        p.insert(Entry { target: Some("x".into()), ..Entry::new("c".into(), Kind::RemovePeer, None, 200.0, 3) });
        assert_eq!(p.next_deadline(), Some(50.0));
        assert_eq!(p.find(Kind::RemovePeer, Some("x")).map(|e| e.settle), Some(3));
        assert!(p.find(Kind::RemovePeer, Some("y")).is_none());
        assert_eq!(p.take("b").map(|e| e.settle), Some(2));
        assert!(p.take("b").is_none());
        let a = p.get_mut("a").unwrap();
        a.old_ids.push(std::mem::replace(&mut a.id, "a2".into()));
        a.deadline = None;
        assert_eq!(p.next_deadline(), Some(200.0), "a request waiting for a reconnect has no deadline");
        assert!(p.take_expired(1000.0).iter().all(|e| e.settle == 3));
        assert_eq!(p.take("a").map(|e| e.settle), Some(1), "an answer to the first send settles a re-sent request");
        assert!(p.is_empty());
        assert_eq!(p.next_deadline(), None);
    }
}
