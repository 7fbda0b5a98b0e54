//! The upstream origins of CONTRACT §1: where each platform API lives.

use domain::Region;
use url::Url;

/// Every platform origin the connectors call. Origins only (no path): each connector appends the
/// platform's own paths, so a simulator serves the same paths as the real platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstreams {
    pub iterable_us: Url,
    pub iterable_eu: Url,
    pub customerio_track_us: Url,
    pub customerio_track_eu: Url,
    pub customerio_app_us: Url,
    pub customerio_app_eu: Url,
    pub customerio_cdp_us: Url,
    pub customerio_cdp_eu: Url,
    pub keap_api: Url,
    /// A full URL (the browser is sent there), not an origin.
    pub keap_authorize: Url,
}

/// Why an upstream setting is unusable; the message names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}: {reason}")]
pub struct UpstreamError {
    pub var: &'static str,
    pub reason: String,
}

impl Upstreams {
    /// The real platforms' origins (CONTRACT §1 defaults).
    pub const DEFAULTS: [(&'static str, &'static str); 10] = [
        ("SHARPSEND_ITERABLE_US_URL", "https://api.iterable.com"),
        ("SHARPSEND_ITERABLE_EU_URL", "https://api.eu.iterable.com"),
        (
            "SHARPSEND_CUSTOMERIO_TRACK_US_URL",
            "https://track.customer.io",
        ),
        (
            "SHARPSEND_CUSTOMERIO_TRACK_EU_URL",
            "https://track-eu.customer.io",
        ),
        ("SHARPSEND_CUSTOMERIO_APP_US_URL", "https://api.customer.io"),
        (
            "SHARPSEND_CUSTOMERIO_APP_EU_URL",
            "https://api-eu.customer.io",
        ),
        ("SHARPSEND_CUSTOMERIO_CDP_US_URL", "https://cdp.customer.io"),
        (
            "SHARPSEND_CUSTOMERIO_CDP_EU_URL",
            "https://cdp-eu.customer.io",
        ),
        ("SHARPSEND_KEAP_API_URL", "https://api.infusionsoft.com"),
        (
            "SHARPSEND_KEAP_AUTHORIZE_URL",
            "https://accounts.infusionsoft.com/app/oauth/authorize",
        ),
    ];

    /// Builds the set from a lookup of variable → value; missing variables take their default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, UpstreamError> {
        let get = |var: &'static str| -> Result<Url, UpstreamError> {
            let default = Self::DEFAULTS
                .iter()
                .find(|(v, _)| *v == var)
                .map(|(_, d)| *d)
                .unwrap_or_default();
            let value = lookup(var).unwrap_or_else(|| default.to_owned());
            parse(var, &value, var == "SHARPSEND_KEAP_AUTHORIZE_URL")
        };
        Ok(Self {
            iterable_us: get("SHARPSEND_ITERABLE_US_URL")?,
            iterable_eu: get("SHARPSEND_ITERABLE_EU_URL")?,
            customerio_track_us: get("SHARPSEND_CUSTOMERIO_TRACK_US_URL")?,
            customerio_track_eu: get("SHARPSEND_CUSTOMERIO_TRACK_EU_URL")?,
            customerio_app_us: get("SHARPSEND_CUSTOMERIO_APP_US_URL")?,
            customerio_app_eu: get("SHARPSEND_CUSTOMERIO_APP_EU_URL")?,
            customerio_cdp_us: get("SHARPSEND_CUSTOMERIO_CDP_US_URL")?,
            customerio_cdp_eu: get("SHARPSEND_CUSTOMERIO_CDP_EU_URL")?,
            keap_api: get("SHARPSEND_KEAP_API_URL")?,
            keap_authorize: get("SHARPSEND_KEAP_AUTHORIZE_URL")?,
        })
    }

    /// The real platforms.
    pub fn defaults() -> Self {
        Self::from_lookup(|_| None).unwrap_or_else(|e| unreachable!("defaults parse: {e}"))
    }

    pub fn iterable(&self, region: Region) -> &Url {
        match region {
            Region::Us => &self.iterable_us,
            Region::Eu => &self.iterable_eu,
        }
    }
}

fn parse(var: &'static str, value: &str, full_url: bool) -> Result<Url, UpstreamError> {
    let err = |reason: String| UpstreamError { var, reason };
    let url = Url::parse(value).map_err(|e| err(format!("`{value}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err(format!("`{value}` must use http or https")));
    }
    if url.host_str().is_none() {
        return Err(err(format!("`{value}` has no host")));
    }
    if !full_url && (url.path() != "/" || url.query().is_some()) {
        return Err(err(format!(
            "`{value}` must be an origin only (scheme, host, optional port, no path)"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_contract_origins() {
        let u = Upstreams::defaults();
        assert_eq!(u.iterable_eu.as_str(), "https://api.eu.iterable.com/");
        assert_eq!(u.keap_authorize.path(), "/app/oauth/authorize");
    }

    #[test]
    fn rejects_paths_and_names_the_variable() {
        let e = Upstreams::from_lookup(|v| {
            (v == "SHARPSEND_ITERABLE_US_URL").then(|| "http://127.0.0.1:9/api".to_owned())
        })
        .unwrap_err();
        assert_eq!(e.var, "SHARPSEND_ITERABLE_US_URL");
        assert!(e.reason.contains("origin only"));
        let e = Upstreams::from_lookup(|v| {
            (v == "SHARPSEND_KEAP_API_URL").then(|| "ftp://x".to_owned())
        })
        .unwrap_err();
        assert_eq!(e.var, "SHARPSEND_KEAP_API_URL");
        assert!(
            Upstreams::from_lookup(
                |v| (v == "SHARPSEND_KEAP_API_URL").then(|| "http://127.0.0.1:4010".to_owned())
            )
            .is_ok()
        );
    }
}
