//! Token buckets: one per API key (in [`crate::auth`]) and one per client address for public
//! function URLs ([`AddressLimiter`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A token bucket: `rate` tokens a second, at most `burst` held.
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn full(burst: u32, now: Instant) -> Bucket {
        Bucket { tokens: f64::from(burst), at: now }
    }

    /// Takes one token, or says how long until one is there.
    pub(crate) fn take(&mut self, rate: u32, burst: u32, now: Instant) -> Result<(), Duration> {
        let (rate, cap) = (f64::from(rate.max(1)), f64::from(burst.max(1)));
        self.tokens = (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * rate).min(cap);
        self.at = now;
        if self.tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - self.tokens) / rate));
        }
        self.tokens -= 1.0;
        Ok(())
    }

    /// Whether it has refilled by `now` (then it is the same as a new one and can be dropped).
    fn is_full(&self, rate: u32, burst: u32, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * f64::from(rate.max(1)) >= f64::from(burst)
    }
}

/// Addresses tracked at once. A bucket is 24 bytes plus its key: a full map is a few MB. Past
/// it, refilled buckets are dropped first (they are the same as new ones), then the oldest.
pub const MAX_ADDRESSES: usize = 65_536;

/// Requests per second and burst for each client address calling a public function URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressLimit {
    /// Tokens a second; 0 turns the limit off.
    pub rate: u32,
    pub burst: u32,
}

impl Default for AddressLimit {
    /// 50 requests a second with bursts of 100: a browser page or a webhook sender stays far
    /// below; one client looping on a public URL is held to a rate a sandbox pool can serve.
    fn default() -> Self {
        AddressLimit { rate: 50, burst: 100 }
    }
}

/// One bucket per client address, in a bounded map.
pub struct AddressLimiter {
    limit: AddressLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    max: usize,
}

/// The key of an address: IPv6 clients are limited per /64 (one host usually holds a whole
/// /64, so per-address buckets would let it make 2^64 of them); IPv4-mapped ones as IPv4.
fn client_key(ip: IpAddr) -> IpAddr {
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

impl AddressLimiter {
    pub fn new(limit: AddressLimit) -> AddressLimiter {
        Self::with_capacity(limit, MAX_ADDRESSES)
    }

    fn with_capacity(limit: AddressLimit, max: usize) -> AddressLimiter {
        AddressLimiter { limit, buckets: Mutex::new(HashMap::new()), max: max.max(1) }
    }

    pub fn limit(&self) -> AddressLimit {
        self.limit
    }

    /// Charges one request from `ip`; `Err` holds how long until it may send another.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let AddressLimit { rate, burst } = self.limit;
        if rate == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let key = client_key(ip);
        let mut buckets = self.buckets.lock();
        if !buckets.contains_key(&key) && buckets.len() >= self.max {
            buckets.retain(|_, b| !b.is_full(rate, burst, now));
            if buckets.len() >= self.max {
                if let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k) {
                    buckets.remove(&oldest);
                }
            }
        }
        buckets.entry(key).or_insert_with(|| Bucket::full(burst, now)).take(rate, burst, now)
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3, t0);
        assert!((0..3).all(|_| b.take(10, 3, t0).is_ok()));
        let wait = b.take(10, 3, t0).expect_err("empty");
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO, "{wait:?}");
        assert!(b.take(10, 3, t0 + Duration::from_millis(100)).is_ok(), "a tenth of a second gives one");
        assert!(b.take(10, 3, t0 + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn addresses_have_their_own_buckets_and_the_map_stays_bounded() {
        let l = AddressLimiter::with_capacity(AddressLimit { rate: 1, burst: 2 }, 4);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        assert!(l.check(a).is_ok() && l.check(a).is_ok());
        assert!(l.check(a).is_err(), "burst spent");
        assert!(l.check("10.0.0.2".parse().expect("ip")).is_ok(), "another address is not held back");
        for i in 0..100u8 {
            let _ = l.check(IpAddr::from([192, 168, 0, i]));
        }
        assert!(l.tracked() <= 4, "{}", l.tracked());
        // One /64 is one client.
        let v6 = |s: &str| s.parse::<IpAddr>().expect("ip");
        let l = AddressLimiter::new(AddressLimit { rate: 1, burst: 1 });
        assert!(l.check(v6("2001:db8::1")).is_ok());
        assert!(l.check(v6("2001:db8::ffff:2")).is_err());
        assert!(l.check(v6("2001:db8:0:1::1")).is_ok());
        assert!(AddressLimiter::new(AddressLimit { rate: 0, burst: 0 }).check(a).is_ok(), "0 is off");
    }
}
