//! Which address a request came from when reverse proxies stand in front of callrec
//! (`[api] trusted_proxies`): the portal's sign-in throttle counts failures per address, and
//! the audit log records it, so behind a proxy the connection's peer (the proxy) would put
//! every person in one bucket.
//!
//! The standard rightmost-untrusted pick: a proxy appends the address it received the
//! request from to `X-Forwarded-For`, so reading the header from the right, every entry up to
//! the first address that is not a trusted proxy was written by a proxy we trust, and that
//! first untrusted address is the client. Whatever lies further left was sent by the client
//! itself and can say anything, so it is never used. When the connection's peer is not a
//! trusted proxy the header is ignored altogether: anyone can send one.

use std::net::IpAddr;

use ipnet::IpNet;

/// The networks whose connections may say, in `X-Forwarded-For`, whom they forward for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trust these networks (a single address is a /32 or /128).
    pub fn new(networks: Vec<IpNet>) -> Self {
        TrustedProxies(networks)
    }

    /// Whether no proxy is trusted (the peer is always the client).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies. An IPv4 peer seen on a dual-stack
    /// listener (`::ffff:10.0.0.1`) is matched as the IPv4 address it is.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: `peer` itself unless it is a trusted proxy; then the rightmost
    /// address of `forwarded_for` (the `X-Forwarded-For` values in the order they came, each
    /// a comma-separated list) that is not a trusted proxy. If every entry is trusted, the
    /// leftmost is the client. An entry that is not an address (`unknown`, garbage) ends the
    /// walk: the hop that wrote it is not one we trust, so the last trusted hop's view, the
    /// address to its right, is the most that can be said.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let entries: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .collect();
        let mut nearest = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else {
                return nearest;
            };
            if !self.trusts(ip) {
                return ip;
            }
            nearest = ip;
        }
        nearest
    }
}

/// The client's address of a request ([`TrustedProxies::client_ip`] of the connection's peer,
/// see [`crate::server::ClientAddr`]); `None` when the server recorded no peer (requests made
/// in-process, in tests).
pub(crate) fn client_ip(
    trusted: TrustedProxies,
) -> impl warp::Filter<Extract = (Option<IpAddr>,), Error = std::convert::Infallible> + Clone {
    use warp::Filter as _;
    warp::ext::optional::<crate::server::ClientAddr>()
        .and(warp::header::headers_cloned())
        .map(
            move |addr: Option<crate::server::ClientAddr>, headers: warp::http::HeaderMap| {
                let crate::server::ClientAddr(peer) = addr?;
                // A value that is not text is kept as an unreadable entry (it ends the walk),
                // not skipped: skipping could bring a client-written entry next to a trusted
                // one.
                let forwarded: Vec<_> = headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()))
                    .collect();
                Some(trusted.client_ip(peer.ip(), forwarded.iter().map(|v| v.as_ref())))
            },
        )
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`) as some proxies write it.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("127.0.0.1"), ["203.0.113.9"]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn an_untrusted_peers_forwarded_for_is_ignored() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client_ip(ip("198.51.100.7"), ["203.0.113.9, 10.0.0.2"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_entry_is_the_client() {
        let trusted = proxies(&["127.0.0.1/32", "10.0.0.0/8"]);
        // One proxy on the same host.
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), ["203.0.113.9"]),
            ip("203.0.113.9")
        );
        // A load balancer, then the local proxy: both trusted, both skipped.
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), ["203.0.113.9, 10.1.2.3"]),
            ip("203.0.113.9")
        );
        // The same, with the entries in two header lines.
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), ["203.0.113.9", "10.1.2.3"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn spoofed_leftmost_entries_are_ignored() {
        let trusted = proxies(&["127.0.0.1/32", "10.0.0.0/8"]);
        // The client sent "X-Forwarded-For: 1.1.1.1, 10.0.0.5" itself; the proxy appended
        // the address it really came from.
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), ["1.1.1.1, 10.0.0.5, 203.0.113.9"]),
            ip("203.0.113.9")
        );
        // A forged entry that is not even an address changes nothing either.
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), ["<script>, 203.0.113.9"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn when_every_entry_is_trusted_or_unreadable_the_nearest_known_address_is_used() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client_ip(ip("10.0.0.1"), ["10.0.0.9, 10.0.0.8"]),
            ip("10.0.0.9")
        );
        assert_eq!(
            trusted.client_ip(ip("10.0.0.1"), ["unknown"]),
            ip("10.0.0.1")
        );
        assert_eq!(
            trusted.client_ip(ip("10.0.0.1"), ["garbage, 10.0.0.8"]),
            ip("10.0.0.8")
        );
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), []), ip("10.0.0.1"));
    }

    #[test]
    fn ports_and_ipv4_mapped_peers_are_understood() {
        let trusted = proxies(&["127.0.0.1/32"]);
        assert_eq!(
            trusted.client_ip(ip("::ffff:127.0.0.1"), ["203.0.113.9:4711"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), ["[2001:db8::1]:4711"]),
            ip("2001:db8::1")
        );
    }
}
