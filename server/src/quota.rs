//! Quotas keyed by who asks (an address, a user in a room): how many things one key may
//! hold at once ([`Counter`]), and how often it may do something ([`Rate`]). Both keep
//! memory bounded whatever the keys: a counter forgets a key when its count drops to
//! zero, and a rate table forgets keys whose bucket has refilled and holds at most
//! `max_keys`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a few field writes: a panic elsewhere leaves the map usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Things held at once per key (connections per address, per user in a room).
pub struct Counter<K: Hash + Eq + Clone> {
    counts: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq + Clone> Default for Counter<K> {
    fn default() -> Self {
        Self { counts: Mutex::default() }
    }
}

/// One counted thing; dropping it gives the count back.
pub struct Held<K: Hash + Eq + Clone> {
    counter: Arc<Counter<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    /// Counts one more for `key`: its guard, and whether it is within `max` (0 = no
    /// limit). The guard gives the count back when dropped, admitted or not.
    pub fn hold(self: &Arc<Self>, key: K, max: usize) -> (Held<K>, bool) {
        let n = {
            let mut m = locked(&self.counts);
            let n = m.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        (Held { counter: self.clone(), key }, max == 0 || n <= max)
    }

    /// How many keys are counted (for tests).
    pub fn keys(&self) -> usize {
        locked(&self.counts).len()
    }
}

impl<K: Hash + Eq + Clone + std::fmt::Debug> std::fmt::Debug for Held<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Held").field(&self.key).finish()
    }
}

impl<K: Hash + Eq + Clone> Drop for Held<K> {
    fn drop(&mut self) {
        let mut m = locked(&self.counter.counts);
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

/// A token bucket per key: `burst` at once, then `per_min` a minute.
pub struct Rate<K: Hash + Eq + Clone> {
    per_min: u32,
    burst: u32,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Clone> Rate<K> {
    /// `per_min` = 0 turns the limit off.
    pub fn new(per_min: u32, burst: u32, max_keys: usize) -> Self {
        Self { per_min, burst: burst.max(1), max_keys: max_keys.max(1), buckets: Mutex::default() }
    }

    fn refill(&self, b: Bucket, now: Instant) -> f64 {
        let per_sec = f64::from(self.per_min) / 60.0;
        (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec).min(f64::from(self.burst))
    }

    /// Takes one token for `key` at `now`; `Err(wait)` when there is none (wait until the
    /// next one). When the table is full of keys that are all still limited, new keys are
    /// refused too (failing closed): that takes more distinct keys than `max_keys`
    /// acting within a minute.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.per_min == 0 {
            return Ok(());
        }
        let mut m = locked(&self.buckets);
        if !m.contains_key(key) && m.len() >= self.max_keys {
            // A bucket that has refilled carries nothing: forget those first.
            let full = f64::from(self.burst);
            m.retain(|_, b| self.refill(*b, now) < full);
            if m.len() >= self.max_keys {
                return Err(Duration::from_secs(1));
            }
        }
        let b = m.entry(key.clone()).or_insert(Bucket { tokens: f64::from(self.burst), at: now });
        let tokens = self.refill(*b, now);
        if tokens >= 1.0 {
            *b = Bucket { tokens: tokens - 1.0, at: now };
            return Ok(());
        }
        *b = Bucket { tokens, at: now };
        let per_sec = f64::from(self.per_min) / 60.0;
        Err(Duration::from_secs_f64((1.0 - tokens) / per_sec))
    }

    /// How many keys are remembered (for tests).
    pub fn keys(&self) -> usize {
        locked(&self.buckets).len()
    }
}

/// The key of a client address for per-address quotas: an IPv4 address, or the /64 an
/// IPv6 address is in (one client usually has a whole /64).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_admits_up_to_max_and_forgets_keys_at_zero() {
        let c = Arc::new(Counter::default());
        let (a, ok_a) = c.hold("k", 1);
        let (b, ok_b) = c.hold("k", 1);
        assert!(ok_a && !ok_b);
        assert!(c.hold("other", 1).1);
        drop((a, b));
        assert_eq!(c.keys(), 0, "given back");
        assert!(c.hold("k", 0).1, "0 = no limit");
    }

    #[test]
    fn a_rate_allows_the_burst_then_the_rate() {
        let r = Rate::new(60, 3, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(r.take(&"k", t0).is_ok());
        }
        let wait = r.take(&"k", t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(r.take(&"other", t0).is_ok(), "keys are apart");
        assert!(r.take(&"k", t0 + Duration::from_secs(1)).is_ok(), "one a second");
        assert!(r.take(&"k", t0 + Duration::from_secs(1)).is_err());
        assert!(Rate::new(0, 1, 1).take(&"k", t0).is_ok(), "0 = off");
    }

    #[test]
    fn a_rate_table_stays_bounded() {
        let r = Rate::new(60, 1, 2);
        let t0 = Instant::now();
        assert!(r.take(&1, t0).is_ok() && r.take(&2, t0).is_ok());
        assert!(r.take(&3, t0).is_err(), "full of limited keys: fail closed");
        assert_eq!(r.keys(), 2);
        // Once the first keys have refilled they are forgotten and new keys fit.
        assert!(r.take(&3, t0 + Duration::from_secs(2)).is_ok());
        assert_eq!(r.keys(), 1);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(ip_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
