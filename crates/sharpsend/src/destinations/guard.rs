//! Where a destination may point (issue 19 §4): `https://` to public addresses only, unless the
//! operator allows private ones (`SHARPSEND_DESTINATIONS_ALLOW_PRIVATE`, which also admits
//! `http://`). The check runs at registration and again at every connection: the delivery
//! client resolves names through [`PublicResolver`], so a name that later resolves to an
//! internal address (DNS rebinding) is refused then too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use url::Url;

use crate::error::Error;

/// Longest destination URL we store.
pub const MAX_URL_LEN: usize = 2048;

/// Whether an address is one a destination may reach without the allow setting: not loopback,
/// private, link-local (cloud metadata lives there), shared (CGNAT), multicast, reserved,
/// documentation or unspecified — for IPv6 also unique-local, and IPv4 embedded in IPv6 by
/// the IPv4 rules.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                let o = v6.octets();
                return is_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 is AWS metadata)
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)) // documentation
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: every cloud's metadata service
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT; Alibaba's metadata)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Why a URL is refused, for the caller (a `VALIDATION_ERROR` on `url`).
fn refused(message: impl Into<String>) -> Error {
    Error::invalid("url", message.into())
}

/// Parses and checks a destination URL's form: absolute, `https://` (or `http://` when private
/// addresses are allowed), a host, no credentials, no fragment, at most [`MAX_URL_LEN`] bytes.
pub fn parse(raw: &str, allow_private: bool) -> Result<Url, Error> {
    if raw.len() > MAX_URL_LEN {
        return Err(refused(format!(
            "`url` is longer than {MAX_URL_LEN} characters."
        )));
    }
    let url = Url::parse(raw.trim()).map_err(|e| {
        refused(format!(
            "`url` is not an absolute URL ({e}): use https://host/path."
        ))
    })?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => {
            return Err(refused(
                "`url` must use https:// (http:// is admitted only with SHARPSEND_DESTINATIONS_ALLOW_PRIVATE=true).",
            ));
        }
        other => {
            return Err(refused(format!("`url` must use https://, not {other}://.")));
        }
    }
    if url.host().is_none() {
        return Err(refused("`url` has no host."));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused(
            "`url` must not carry credentials: deliveries are signed, and the secret authenticates them.",
        ));
    }
    if url.fragment().is_some() {
        return Err(refused("`url` must not have a #fragment."));
    }
    Ok(url)
}

/// [`parse`], then resolves the host and refuses it unless every address it resolves to is
/// public (or private addresses are allowed).
pub async fn check(raw: &str, allow_private: bool) -> Result<Url, Error> {
    let url = parse(raw, allow_private)?;
    if allow_private {
        return Ok(url);
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = resolve(&host, port).await.map_err(|e| {
        refused(format!(
            "`url`'s host {host} does not resolve ({e}): check the name."
        ))
    })?;
    if let Some(private) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(refused(format!(
            "`url`'s host {host} resolves to {}, a loopback, private, link-local or metadata address: destinations must be reachable on the public internet (an operator may set SHARPSEND_DESTINATIONS_ALLOW_PRIVATE=true).",
            private.ip()
        )));
    }
    Ok(url)
}

/// The host's addresses: an IP literal is itself; a name goes through the system resolver.
async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port)).await?.collect();
    if addrs.is_empty() {
        return Err(std::io::Error::other("no addresses"));
    }
    Ok(addrs)
}

/// Whether a URL's host is an IP literal that is not public (the resolver never sees those).
pub fn literal_is_private(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        _ => false,
    }
}

/// The delivery client's resolver: the system's, keeping public addresses only. A name with
/// none left fails the connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (loopback, private, link-local or metadata addresses are refused)"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn forms_are_checked() {
        assert!(parse("https://hooks.example.com/x", false).is_ok());
        assert!(parse("http://hooks.example.com/x", false).is_err());
        assert!(parse("http://hooks.example.com/x", true).is_ok());
        assert!(parse("ftp://hooks.example.com/x", true).is_err());
        assert!(parse("https://u:p@hooks.example.com/x", false).is_err());
        assert!(parse("https://hooks.example.com/x#f", false).is_err());
        assert!(parse("/relative", false).is_err());
        assert!(parse(&format!("https://e.com/{}", "a".repeat(3000)), false).is_err());
    }

    #[tokio::test]
    async fn loopback_and_metadata_are_refused_unless_allowed() {
        for url in [
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost:8443/x",
        ] {
            assert!(check(url, false).await.is_err(), "{url}");
        }
        assert!(check("http://127.0.0.1:9/x", true).await.is_ok());
        assert!(literal_is_private(
            &Url::parse("https://10.0.0.1/").unwrap()
        ));
        assert!(!literal_is_private(
            &Url::parse("https://example.com/").unwrap()
        ));
    }
}
