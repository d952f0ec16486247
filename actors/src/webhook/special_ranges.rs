//! The address ranges a webhook may never target, kept as data: the IANA
//! special-purpose address registries, whole, plus multicast and the
//! deprecated site-local range.
//!
//! Sources, transcribed on 2026-12-02 (each entry names its RFC):
//! - IPv4: <https://www.iana.org/assignments/iana-ipv4-special-registry/>
//! - IPv6: <https://www.iana.org/assignments/iana-ipv6-special-registry/>
//!
//! Every entry is refused, including the few the registry marks "globally
//! reachable" (anycast services, AS112, AMT, the well-known NAT64 prefix):
//! no merchant's webhook receiver lives there. Prefixes that embed an IPv4
//! address the guard can route to (IPv4-mapped, IPv4-compatible, the
//! well-known NAT64 prefix, 6to4) are not in these tables: `ssrf.rs` checks
//! the IPv4 address they carry instead, so `[::ffff:8.8.8.8]` is as good
//! as `8.8.8.8` and `[::ffff:10.0.0.1]` as bad as `10.0.0.1`.
//!
//! When IANA adds an entry, add a line here and a case to the tests.

use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv4 range: network, prefix length, what it is.
pub struct V4Range(pub Ipv4Addr, pub u8, pub &'static str);

/// An IPv6 range: network, prefix length, what it is.
pub struct V6Range(pub Ipv6Addr, pub u8, pub &'static str);

const fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16) -> Ipv6Addr {
    Ipv6Addr::new(a, b, c, d, e, f, g, h)
}

pub const IPV4: &[V4Range] = &[
    V4Range(v4(0, 0, 0, 0), 8, "\"this network\" (RFC 791)"),
    V4Range(v4(10, 0, 0, 0), 8, "private-use (RFC 1918)"),
    V4Range(v4(100, 64, 0, 0), 10, "shared address space (RFC 6598)"),
    V4Range(v4(127, 0, 0, 0), 8, "loopback (RFC 1122)"),
    V4Range(v4(169, 254, 0, 0), 16, "link local (RFC 3927)"),
    V4Range(v4(172, 16, 0, 0), 12, "private-use (RFC 1918)"),
    V4Range(v4(192, 0, 0, 0), 24, "IETF protocol assignments (RFC 6890; incl. 192.0.0.0/29 RFC 7335, .8 RFC 7600, .9 RFC 7723, .10 RFC 8155, .170-.171 RFC 8880)"),
    V4Range(v4(192, 0, 2, 0), 24, "documentation TEST-NET-1 (RFC 5737)"),
    V4Range(v4(192, 31, 196, 0), 24, "AS112-v4 (RFC 7535)"),
    V4Range(v4(192, 52, 193, 0), 24, "AMT (RFC 7450)"),
    V4Range(v4(192, 88, 99, 0), 24, "deprecated 6to4 relay anycast (RFC 7526)"),
    V4Range(v4(192, 168, 0, 0), 16, "private-use (RFC 1918)"),
    V4Range(v4(192, 175, 48, 0), 24, "direct delegation AS112 service (RFC 7534)"),
    V4Range(v4(198, 18, 0, 0), 15, "benchmarking (RFC 2544)"),
    V4Range(v4(198, 51, 100, 0), 24, "documentation TEST-NET-2 (RFC 5737)"),
    V4Range(v4(203, 0, 113, 0), 24, "documentation TEST-NET-3 (RFC 5737)"),
    V4Range(v4(224, 0, 0, 0), 4, "multicast (RFC 5771; not in the special registry)"),
    V4Range(v4(240, 0, 0, 0), 4, "reserved (RFC 1112)"),
    V4Range(v4(255, 255, 255, 255), 32, "limited broadcast (RFC 8190)"),
];

pub const IPV6: &[V6Range] = &[
    V6Range(v6(0, 0, 0, 0, 0, 0, 0, 1), 128, "loopback (RFC 4291)"),
    V6Range(v6(0, 0, 0, 0, 0, 0, 0, 0), 128, "unspecified (RFC 4291)"),
    V6Range(v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, "IPv4-IPv6 translation, local use (RFC 8215)"),
    V6Range(v6(0x100, 0, 0, 0, 0, 0, 0, 0), 64, "discard-only (RFC 6666)"),
    V6Range(v6(0x100, 0, 0, 1, 0, 0, 0, 0), 64, "dummy IPv6 prefix (RFC 9780)"),
    V6Range(v6(0x2001, 0, 0, 0, 0, 0, 0, 0), 23, "IETF protocol assignments (RFC 2928; incl. TEREDO 2001::/32 RFC 4380, PCP/TURN/DNS-SD anycast 2001:1::1-3, benchmarking 2001:2::/48 RFC 5180, AMT 2001:3::/32, AS112-v6 2001:4:112::/48, ORCHID 2001:10::/28, ORCHIDv2 2001:20::/28 RFC 7343, DETs 2001:30::/28 RFC 9374)"),
    V6Range(v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, "documentation (RFC 3849)"),
    V6Range(v6(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0), 48, "direct delegation AS112 service (RFC 7534)"),
    V6Range(v6(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, "documentation (RFC 9637)"),
    V6Range(v6(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16, "segment routing SIDs (RFC 9602)"),
    V6Range(v6(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "unique-local (RFC 4193)"),
    V6Range(v6(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local unicast (RFC 4291)"),
    V6Range(v6(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local, deprecated (RFC 3879; not in the special registry)"),
    V6Range(v6(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast (RFC 4291; not in the special registry)"),
];

fn mask4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// The special range `ip` falls in, if any.
pub fn v4_range(ip: Ipv4Addr) -> Option<&'static V4Range> {
    let bits = u32::from(ip);
    IPV4.iter()
        .find(|r| bits & mask4(r.1) == u32::from(r.0) & mask4(r.1))
}

/// The special range `ip` falls in, if any.
pub fn v6_range(ip: Ipv6Addr) -> Option<&'static V6Range> {
    let bits = u128::from(ip);
    IPV6.iter()
        .find(|r| bits & mask6(r.1) == u128::from(r.0) & mask6(r.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_network_is_aligned_to_its_prefix() {
        for r in IPV4 {
            assert!(r.1 <= 32, "{}", r.2);
            assert_eq!(u32::from(r.0) & !mask4(r.1), 0, "{}/{}", r.0, r.1);
        }
        for r in IPV6 {
            assert!(r.1 <= 128, "{}", r.2);
            assert_eq!(u128::from(r.0) & !mask6(r.1), 0, "{}/{}", r.0, r.1);
        }
    }

    #[test]
    fn first_and_last_address_of_each_range_match_it() {
        for r in IPV4 {
            let first = u32::from(r.0);
            let last = first | !mask4(r.1);
            for ip in [first, last] {
                assert!(v4_range(Ipv4Addr::from(ip)).is_some(), "{}/{}", r.0, r.1);
            }
        }
        for r in IPV6 {
            let first = u128::from(r.0);
            let last = first | !mask6(r.1);
            for ip in [first, last] {
                assert!(v6_range(Ipv6Addr::from(ip)).is_some(), "{}/{}", r.0, r.1);
            }
        }
    }

    #[test]
    fn neighbours_outside_the_ranges_are_not_matched() {
        for ip in [
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.0",
            "198.20.0.0",
            "8.8.8.8",
            "1.1.1.1",
        ] {
            assert!(v4_range(ip.parse().unwrap()).is_none(), "{ip}");
        }
        for ip in [
            "2001:200::1",
            "2001:db9::1",
            "3fff:1000::1",
            "2606:4700::1111",
            "2a00:1450::1",
            "64:ff9b:2::1",
            "2620:4f:8001::1",
            "5f01::1",
        ] {
            assert!(v6_range(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }
}
