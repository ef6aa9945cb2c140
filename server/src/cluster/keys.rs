//! Every Redis key and channel of the cluster (the store's own keys are in
//! `crate::store::redis::keys`); docs/SCALING.md lists them all. A room id sits between
//! `{}` (a Redis Cluster hash tag) and suffixes have no `:`, so keys never collide.

/// `"<node>|<epoch>"` of the room's owner, with a lease (`PX`); see `super::lease`.
pub fn owner(room: &str) -> String {
    format!("hms:room:{{{room}}}:owner")
}

/// The room's fencing counter: `INCR`ed at each acquisition.
pub fn epoch(room: &str) -> String {
    format!("hms:room:{{{room}}}:epoch")
}

/// The room's membership: a hash of its records (see `super::image`), written by the
/// owner only, fenced by its epoch.
pub fn mirror(room: &str) -> String {
    format!("hms:room:{{{room}}}:mirror")
}

/// A live node's stats (JSON), with a TTL its heartbeat renews: absent = dead.
pub fn node(id: &str) -> String {
    format!("hms:node:{id}")
}

/// Set of node ids that have run (for listing; liveness is [`node`]).
pub const NODES: &str = "hms:nodes";

/// Counter giving each node process a distinct number: the high bits of its connection ids.
pub const NODE_SEQ: &str = "hms:nodes:seq";

/// The one pub/sub channel of a node: everything other nodes send it.
pub fn channel(id: &str) -> String {
    format!("hms:node:{id}:ch")
}
