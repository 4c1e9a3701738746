//! Where a webhook may go (SSRF guard). A URL must be absolute http(s) without credentials, https
//! unless development allows http; and every address its host resolves to must be public: no
//! loopback, private, link-local (the cloud metadata address among them), shared (CGNAT),
//! unspecified, multicast, broadcast, documentation or reserved address, and no IPv6 form that
//! embeds one of those (IPv4-mapped, IPv4-compatible, NAT64, 6to4). Resolution happens in the
//! transport; these are the rules it applies, at creation and again at every delivery.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Url;

/// What the rules allow besides public addresses (development only; configuration refuses both
/// in production).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DestinationPolicy {
    pub allow_http: bool,
    pub allow_loopback: bool,
}

/// Why a URL or an address is refused, in words for the caller.
pub type Refusal = String;

/// Parses and checks the URL's shape; returns it with its host.
pub fn check_url(text: &str, policy: DestinationPolicy) -> Result<Url, Refusal> {
    if text.len() > 2048 {
        return Err("is longer than 2048 characters".into());
    }
    let url = Url::parse(text).map_err(|e| format!("is not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err("must be an https:// URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    match url.host() {
        None => Err("has no host".into()),
        Some(url::Host::Ipv4(a)) => check_ip(IpAddr::V4(a), policy).map(|()| url),
        Some(url::Host::Ipv6(a)) => check_ip(IpAddr::V6(a), policy).map(|()| url),
        Some(url::Host::Domain(d)) if d.len() > 253 => {
            Err("has a host name over 253 characters".into())
        }
        Some(url::Host::Domain(_)) => Ok(url),
    }
}

/// Whether `ip` may be connected to.
pub fn check_ip(ip: IpAddr, policy: DestinationPolicy) -> Result<(), Refusal> {
    match forbidden(ip) {
        None => Ok(()),
        Some("loopback") if policy.allow_loopback => Ok(()),
        Some(kind) => Err(format!("resolves to a {kind} address ({ip})")),
    }
}

/// The kind of address `ip` is when it is not public.
#[must_use]
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => forbidden_v4(a),
        IpAddr::V6(a) => forbidden_v6(a),
    }
}

fn forbidden_v4(a: Ipv4Addr) -> Option<&'static str> {
    let [b0, b1, b2, _] = a.octets();
    if a.is_loopback() {
        Some("loopback")
    } else if a.is_private() {
        Some("private")
    } else if a.is_link_local() {
        // 169.254.0.0/16, the cloud metadata address (169.254.169.254) among them.
        Some("link-local")
    } else if b0 == 100 && (64..128).contains(&b1) {
        Some("shared (CGNAT)")
    } else if a.is_unspecified() || b0 == 0 {
        Some("unspecified")
    } else if a.is_multicast() {
        Some("multicast")
    } else if a.is_broadcast() || b0 >= 240 {
        Some("reserved")
    } else if a.is_documentation() || (b0 == 198 && (b1 == 18 || b1 == 19)) {
        Some("documentation or benchmarking")
    } else if b0 == 192 && b1 == 0 && b2 == 0 {
        Some("protocol assignment")
    } else {
        None
    }
}

fn forbidden_v6(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    let [s0, s1, ..] = s;
    if a.is_loopback() {
        return Some("loopback");
    }
    if a.is_unspecified() {
        return Some("unspecified");
    }
    // An IPv4 address inside IPv6: judged as that address.
    if let Some(v4) = a.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| {
        let [h0, h1] = hi.to_be_bytes();
        let [l0, l1] = lo.to_be_bytes();
        Ipv4Addr::new(h0, h1, l0, l1)
    };
    let [.., s6, s7] = s;
    if s0 == 0 && s1 == 0 && s.iter().take(6).all(|x| *x == 0) {
        // IPv4-compatible (deprecated): ::a.b.c.d
        return forbidden_v4(embedded(s6, s7)).or(Some("IPv4-compatible"));
    }
    if s0 == 0x64 && s1 == 0xff9b {
        let [_, _, s2, s3, s4, s5, ..] = s;
        if s2 == 1 {
            // The local-use NAT64 prefix (64:ff9b:1::/48) places the IPv4 address by the
            // operator's prefix length: it cannot be read back, so it is refused.
            return Some("local NAT64");
        }
        if s2 == 0 && s3 == 0 && s4 == 0 && s5 == 0 {
            // The well-known NAT64 prefix (64:ff9b::/96) reaches the IPv4 address it embeds.
            return forbidden_v4(embedded(s6, s7));
        }
        return Some("NAT64 (non-standard)");
    }
    let [_, _, _, _, s4, s5, ..] = s;
    if s0 == 0 && s1 == 0 && s.iter().take(4).all(|x| *x == 0) && s4 == 0xffff && s5 == 0 {
        // SIIT, ::ffff:0:a.b.c.d: judged as the IPv4 address.
        return forbidden_v4(embedded(s6, s7));
    }
    if s0 == 0x2002 {
        // 6to4 carries an IPv4 address in its second and third segments.
        let [_, s1b, s2b, ..] = s;
        return forbidden_v4(embedded(s1b, s2b)).or(Some("6to4"));
    }
    if s0 & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if s0 & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if s0 & 0xff00 == 0xff00 {
        Some("multicast")
    } else if s0 == 0x2001 && s1 == 0x0db8 {
        Some("documentation")
    } else if s0 == 0x0100 && s.iter().skip(1).take(3).all(|x| *x == 0) {
        Some("discard")
    } else if s0 & 0xffc0 == 0xfec0 {
        Some("site-local")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: DestinationPolicy = DestinationPolicy {
        allow_http: false,
        allow_loopback: false,
    };

    #[test]
    fn the_named_addresses_are_refused_and_public_ones_pass() {
        for bad in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:0a00:0001::1",
            "64:ff9b:1:a00:0:100:808:808",
            "::ffff:0:a00:1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(forbidden(ip).is_some(), "{bad} passed");
        }
        for good in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = good.parse().unwrap();
            assert_eq!(forbidden(ip), None, "{good}");
        }
    }

    #[test]
    fn urls_are_https_without_credentials_unless_development_says_otherwise() {
        assert!(check_url("https://hooks.example.com/in", STRICT).is_ok());
        for bad in [
            "http://hooks.example.com/in",
            "ftp://hooks.example.com",
            "https://user:pw@hooks.example.com/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1:8443/",
            "https://0x7f.1/",
            "not a url",
            "https://hooks.example.com/#frag",
        ] {
            assert!(check_url(bad, STRICT).is_err(), "{bad}");
        }
        let dev = DestinationPolicy {
            allow_http: true,
            allow_loopback: true,
        };
        assert!(check_url("http://127.0.0.1:9000/hook", dev).is_ok());
        assert!(
            check_url("http://10.0.0.1/hook", dev).is_err(),
            "only loopback is allowed"
        );
    }
}
