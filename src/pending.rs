//! The table of requests waiting for their answer: ids, what they were, their deadlines,
//! and whatever settles them (`T` = the JS resolve/reject pair in the browser, anything
//! in native tests). One timer serves the whole table: the browser layer arms it for
//! [`Pending::next_deadline`].

/// What a pending request was, so its answer is applied the right way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `join`: settled after the answer, the policy and the peer list.
    Join,
    /// `end-room`: on success the client leaves.
    EndRoom,
    /// `peer-leave-request`.
    RemovePeer,
}

/// One waiting request.
#[derive(Debug)]
pub struct Entry<T> {
    /// The JSON-RPC id.
    pub id: String,
    /// What it was.
    pub kind: Kind,
    /// When it times out, in ms on the caller's clock.
    pub deadline: f64,
    /// What settles it.
    pub settle: T,
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
    pub fn insert(&mut self, id: String, kind: Kind, deadline: f64, settle: T) {
        self.entries.push(Entry { id, kind, deadline, settle });
    }

    /// Removes and returns the request `id`, if it is waiting.
    pub fn take(&mut self, id: &str) -> Option<Entry<T>> {
        let i = self.entries.iter().position(|e| e.id == id)?;
        Some(self.entries.remove(i))
    }

    /// Removes and returns the first request of `kind`.
    pub fn take_kind(&mut self, kind: Kind) -> Option<Entry<T>> {
        let i = self.entries.iter().position(|e| e.kind == kind)?;
        Some(self.entries.remove(i))
    }

    /// Whether request `id` is waiting.
    pub fn contains(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    /// Whether a request of `kind` is waiting.
    pub fn has_kind(&self, kind: Kind) -> bool {
        self.entries.iter().any(|e| e.kind == kind)
    }

    /// Removes and returns every request whose deadline is at or before `now`.
    pub fn take_expired(&mut self, now: f64) -> Vec<Entry<T>> {
        let (expired, kept) = std::mem::take(&mut self.entries).into_iter().partition(|e| e.deadline <= now);
        self.entries = kept;
        expired
    }

    /// Removes and returns everything (when the session ends).
    pub fn drain(&mut self) -> Vec<Entry<T>> {
        std::mem::take(&mut self.entries)
    }

    /// The earliest deadline, for the one timer.
    pub fn next_deadline(&self) -> Option<f64> {
        self.entries.iter().map(|e| e.deadline).reduce(f64::min)
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
    fn take_by_id_and_expiry() {
        let mut p = Pending::default();
        p.insert("a".into(), Kind::EndRoom, 100.0, 1);
        p.insert("b".into(), Kind::RemovePeer, 50.0, 2);
        p.insert("c".into(), Kind::RemovePeer, 200.0, 3);
        assert_eq!(p.next_deadline(), Some(50.0));
        assert_eq!(p.take("b").map(|e| e.settle), Some(2));
        assert!(p.take("b").is_none());
        assert_eq!(p.next_deadline(), Some(100.0));
        let expired: Vec<i32> = p.take_expired(100.0).into_iter().map(|e| e.settle).collect();
        assert_eq!(expired, vec![1]);
        assert_eq!(p.len(), 1);
        assert_eq!(p.drain().len(), 1);
        assert!(p.is_empty());
        assert_eq!(p.next_deadline(), None);
    }
}
