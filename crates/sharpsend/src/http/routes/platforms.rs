//! The capability matrix (CONTRACT §9).

use std::collections::BTreeMap;

use domain::{Capability, Platform, Region, Support};
use serde::Serialize;

use crate::http::openapi::Envelope;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformInfo {
    pub platform: Platform,
    pub name: &'static str,
    /// How a publisher authenticates.
    pub auth: &'static str,
    pub regions: Vec<Region>,
    /// Every capability of the matrix, supported or not.
    pub capabilities: BTreeMap<&'static str, Support>,
    /// The sync kinds (`POST …/sync` `kinds`, and `…/records/{kind}`).
    pub sync_kinds: Vec<&'static str>,
    /// Opt-in sync kinds: run only when named in `kinds` (a sync without `kinds` skips them),
    /// or on schedule when the integration's `config.metricsHistory` is true.
    pub optional_sync_kinds: Vec<&'static str>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PlatformList {
    pub platforms: Vec<PlatformInfo>,
}

/// The platforms and what each can do.
#[utoipa::path(get, path = "/api/platforms", tag = "platforms",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<PlatformList>)))]
pub async fn list_platforms() -> Envelope<PlatformList> {
    let platforms = Platform::ALL
        .into_iter()
        .map(|p| PlatformInfo {
            platform: p,
            name: p.display_name(),
            auth: p.auth_description(),
            regions: if p.has_regions() {
                vec![Region::Us, Region::Eu]
            } else {
                vec![]
            },
            capabilities: Capability::ALL
                .into_iter()
                .map(|c| (c.as_str(), p.support(c)))
                .collect(),
            sync_kinds: p.sync_kinds().to_vec(),
            optional_sync_kinds: p.optional_sync_kinds().to_vec(),
        })
        .collect();
    Envelope::ok(PlatformList { platforms })
}
