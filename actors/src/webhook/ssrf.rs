//! The SSRF guard. A webhook URL must be absolute http(s) without
//! credentials, and its host must not be, or resolve to, an address inside
//! the operator's network: loopback, private, link-local, CGNAT, multicast,
//! unspecified, documentation or reserved ranges, in IPv4 or IPv6 (including
//! IPv4-mapped, -compatible, NAT64 and 6to4 forms that embed one). Numeric
//! hosts in decimal, octal or hex (`2130706433`, `0177.0.0.1`, `0x7f.1`) are
//! normalised by the WHATWG URL parser before the check. URLs are vetted
//! when saved and again at connect time, where the connection goes to the
//! vetted address (see `transport.rs`), so DNS rebinding cannot slip past.

use super::special_ranges;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// How long saving a URL waits for its name to resolve.
const SAVE_RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a webhook URL was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether an address must never be a webhook target.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    special_ranges::v4_range(ip).is_some()
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    // A prefix that carries an IPv4 address is as good or bad as that address.
    if let Some(v4) = embedded_v4(ip) {
        return forbidden_v4(v4);
    }
    special_ranges::v6_range(ip).is_some()
}

/// The IPv4 address an IPv6 address carries: mapped (`::ffff:a.b.c.d`),
/// compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:ab:cd::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let tail = || {
        Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        )
    };
    if seg[..5] == [0; 5] && (seg[5] == 0xffff || (seg[5] == 0 && (seg[6] != 0 || seg[7] > 1))) {
        return Some(tail());
    }
    if seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2..6] == [0; 4] {
        return Some(tail());
    }
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        ));
    }
    None
}

/// A parsed webhook target: where to connect and what to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub url: Url,
    /// The host if it is a name; IP literals are checked by `vet_url` itself.
    pub domain: Option<String>,
    pub port: u16,
}

/// Checks a URL's shape and, when its host is an IP literal (in any
/// notation), the address. Names are checked by resolving them.
pub fn vet_url(text: &str, allow_private: bool) -> Result<Target, Refused> {
    if text.len() > 2_048 {
        return Err(Refused("webhook_url is longer than 2048 characters".into()));
    }
    let url =
        Url::parse(text).map_err(|e| Refused(format!("webhook_url is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused("webhook_url must use http or https".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused("webhook_url must not carry credentials".into()));
    }
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Refused("webhook_url has no port".into()))?;
    let domain = match url.host() {
        None => return Err(Refused("webhook_url has no host".into())),
        Some(Host::Ipv4(ip)) => {
            check_ip(IpAddr::V4(ip), allow_private)?;
            None
        }
        Some(Host::Ipv6(ip)) => {
            check_ip(IpAddr::V6(ip), allow_private)?;
            None
        }
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let local = name == "localhost"
                || name.ends_with(".localhost")
                || name.ends_with(".local")
                || name.ends_with(".internal")
                || !name.contains('.');
            if local && !allow_private {
                return Err(Refused(format!(
                    "webhook_url host '{name}' is a local name"
                )));
            }
            Some(name)
        }
    };
    Ok(Target { url, domain, port })
}

fn check_ip(ip: IpAddr, allow_private: bool) -> Result<(), Refused> {
    if !allow_private && is_forbidden(ip) {
        return Err(Refused(format!(
            "webhook_url points at a private or reserved address ({ip})"
        )));
    }
    Ok(())
}

/// Resolves a name and keeps only permitted addresses; refuses if any
/// resolved address is forbidden (a name that mixes public and private
/// addresses is treated as hostile).
pub async fn resolve(
    name: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<std::net::SocketAddr>, Refused> {
    let addrs: Vec<_> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| Refused(format!("webhook host '{name}' does not resolve: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Refused(format!("webhook host '{name}' has no addresses")));
    }
    for addr in &addrs {
        check_ip(addr.ip(), allow_private)?;
    }
    Ok(addrs)
}

/// The check made when a URL is saved: shape, literal address, and the
/// addresses its name resolves to now. A name that does not resolve yet is
/// accepted (it is vetted again at every delivery).
pub async fn vet_on_save(text: &str, allow_private: bool) -> Result<String, Refused> {
    let target = vet_url(text, allow_private)?;
    if let Some(name) = &target.domain {
        // A slow resolver must not hold the request: after the timeout the
        // name counts as not resolving yet (it is vetted at every delivery).
        let lookup = tokio::time::timeout(
            SAVE_RESOLVE_TIMEOUT,
            resolve(name, target.port, allow_private),
        );
        let resolved = lookup.await.unwrap_or_else(|_| {
            Err(Refused(format!(
                "webhook host '{name}' does not resolve in time"
            )))
        });
        match resolved {
            Ok(_) => {}
            Err(refused)
                if refused.0.contains("does not resolve") || refused.0.contains("no addresses") => {
            }
            Err(refused) => return Err(refused),
        }
    }
    Ok(target.url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile URLs, every one of which must be refused.
    const HOSTILE: &[&str] = &[
        "http://127.0.0.1/hook",
        "http://127.1/",
        "http://127.0.0.1:8080/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",
        "http://017700000001/",
        "http://0/",
        "http://0.0.0.0/",
        "http://10.0.0.1/",
        "http://10.255.255.255/",
        "http://172.16.0.1/",
        "http://172.31.255.254/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",
        "http://100.127.255.254/",
        "http://192.0.0.8/",
        "http://192.0.2.1/",
        "http://198.18.0.1/",
        "http://198.51.100.7/",
        "http://203.0.113.9/",
        "http://224.0.0.1/",
        "http://239.255.255.250/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://[::1]/",
        "http://[::]/",
        "http://[0:0:0:0:0:0:0:1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::127.0.0.1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
        "http://[2002:c0a8:101::1]/",
        "http://[fc00::1]/",
        "http://[fd12:3456:789a::1]/",
        "http://[fe80::1]/",
        "http://[fe80::1%25eth0]/",
        "http://[fec0::1]/",
        "http://[ff02::1]/",
        "http://[2001:db8::1]/",
        // IANA IPv6 special-purpose ranges beyond the classic ones.
        "http://[3fff::1]/",
        "http://[3fff:fff::1]/",
        "http://[64:ff9b:1::a00:1]/",
        "http://[64:ff9b:1::808:808]/",
        "http://[2001::1]/",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "http://[2001:1::1]/",
        "http://[2001:2::1]/",
        "http://[2001:3::1]/",
        "http://[2001:4:112::1]/",
        "http://[2001:10::1]/",
        "http://[2001:20::1]/",
        "http://[2001:30::1]/",
        "http://[2620:4f:8000::1]/",
        "http://[5f00::1]/",
        "http://[100::1]/",
        "http://[100:0:0:1::1]/",
        "http://192.31.196.1/",
        "http://192.52.193.1/",
        "http://192.88.99.1/",
        "http://192.175.48.1/",
        "http://[::ffff:192.0.0.170]/",
        "http://localhost/",
        "http://LOCALHOST:9000/",
        "http://api.localhost/",
        "http://localhost./",
        "http://metadata.internal/",
        "http://printer.local/",
        "http://intranet/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "http://user:pass@example.com/",
        "http://user@example.com/",
        "//example.com/",
        "example.com/hook",
        "http://",
        "http:///path",
        "",
    ];

    #[test]
    fn refuses_every_hostile_url() {
        assert!(HOSTILE.len() >= 40);
        for url in HOSTILE {
            assert!(vet_url(url, false).is_err(), "accepted {url}");
        }
    }

    #[test]
    fn accepts_public_urls() {
        for url in [
            "https://example.com/hooks/tijori",
            "http://93.184.216.34:8080/x",
            "https://[2606:4700::6810:84e5]/",
            // The well-known NAT64 prefix and IPv4-mapped forms of a public address.
            "http://[64:ff9b::808:808]/",
            "http://[::ffff:8.8.8.8]/",
            "https://hooks.example.co.in/path?query=1",
        ] {
            assert!(vet_url(url, false).is_ok(), "refused {url}");
        }
    }

    #[test]
    fn allow_private_lets_local_receivers_through() {
        assert!(vet_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(vet_url("http://localhost:9000/hook", true).is_ok());
        // Shape rules still hold.
        assert!(vet_url("ftp://127.0.0.1/", true).is_err());
        assert!(vet_url("http://u:p@127.0.0.1/", true).is_err());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_on_save() {
        // "localhost" is refused by name already; a dotted name that resolves
        // to loopback through /etc/hosts is refused by its address.
        assert!(vet_on_save("http://localhost/", false).await.is_err());
        assert!(resolve("localhost", 80, false).await.is_err());
        assert!(resolve("localhost", 80, true).await.is_ok());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn any_text_is_vetted_without_panic(text in any::<String>()) {
            let _ = vet_url(&text, false);
            let _ = vet_url(&text, true);
        }

        #[test]
        fn urlish_text_is_vetted_without_panic(
            scheme in proptest::sample::select(vec!["http", "https", "ftp", "HTTP", ""]),
            host in "[0-9a-zA-Z.:\\[\\]%@_-]{0,40}",
            rest in "[/?#a-z0-9%=&.-]{0,20}",
        ) {
            let _ = vet_url(&format!("{scheme}://{host}{rest}"), false);
        }

        /// An IPv6 form that carries an IPv4 address is judged by that address.
        #[test]
        fn mapped_and_nat64_forms_judge_the_ipv4_inside(octets in any::<[u8; 4]>()) {
            let v4 = Ipv4Addr::from(octets);
            let expected = is_forbidden(IpAddr::V4(v4));
            let mapped = v4.to_ipv6_mapped();
            prop_assert_eq!(is_forbidden(IpAddr::V6(mapped)), expected, "{}", mapped);
            let [a, b, c, d] = octets;
            let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
            prop_assert_eq!(is_forbidden(IpAddr::V6(nat64)), expected, "{}", nat64);
            let six_to_four = Ipv6Addr::new(0x2002, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]), 0, 0, 0, 0, 1);
            prop_assert_eq!(is_forbidden(IpAddr::V6(six_to_four)), expected, "{}", six_to_four);
            // The literal URL forms agree with the address check.
            prop_assert_eq!(vet_url(&format!("http://{v4}/"), false).is_err(), expected);
            prop_assert_eq!(vet_url(&format!("http://[{mapped}]/"), false).is_err(), expected);
        }

        /// Every address inside a special-purpose range is refused.
        #[test]
        fn addresses_inside_special_ranges_are_refused(i in 0usize..1_000, noise in any::<u128>()) {
            let v4 = &special_ranges::IPV4[i % special_ranges::IPV4.len()];
            let host_bits4 = u32::MAX.checked_shr(u32::from(v4.1)).unwrap_or(0);
            let ip4 = Ipv4Addr::from(u32::from(v4.0) | (noise as u32 & host_bits4));
            prop_assert!(is_forbidden(IpAddr::V4(ip4)), "{} in {}/{}", ip4, v4.0, v4.1);
            let v6 = &special_ranges::IPV6[i % special_ranges::IPV6.len()];
            let host_bits6 = u128::MAX.checked_shr(u32::from(v6.1)).unwrap_or(0);
            let ip6 = Ipv6Addr::from(u128::from(v6.0) | (noise & host_bits6));
            prop_assert!(is_forbidden(IpAddr::V6(ip6)), "{} in {}/{}", ip6, v6.0, v6.1);
        }
    }
}
