//! A typed client of a simulator's `/_sim/` control API, for tests in other crates.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::{Fault, LoggedRequest};

/// Drives one simulator origin's control API over HTTP.
#[derive(Clone, Debug)]
pub struct SimClient {
    origin: String,
    http: reqwest::Client,
}

impl SimClient {
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    async fn ok(resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
        let status = resp.status();
        if status.is_success() {
            Ok(resp)
        } else {
            let body = resp.text().await.unwrap_or_default();
            anyhow::bail!("simulator control call failed: {status}: {body}")
        }
    }

    pub async fn inject(&self, fault: &Fault) -> anyhow::Result<()> {
        Self::ok(
            self.http
                .post(self.url("/_sim/faults"))
                .json(fault)
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }

    pub async fn clear_faults(&self) -> anyhow::Result<()> {
        Self::ok(self.http.delete(self.url("/_sim/faults")).send().await?).await?;
        Ok(())
    }

    pub async fn reset(&self) -> anyhow::Result<()> {
        Self::ok(self.http.post(self.url("/_sim/reset")).send().await?).await?;
        Ok(())
    }

    /// Logged requests, oldest first; `path` filters by prefix.
    pub async fn requests(&self, path: Option<&str>) -> anyhow::Result<Vec<LoggedRequest>> {
        let mut req = self.http.get(self.url("/_sim/requests"));
        if let Some(p) = path {
            req = req.query(&[("path", p)]);
        }
        Self::ok(req.send().await?)
            .await?
            .json()
            .await
            .context("decoding /_sim/requests")
    }

    pub async fn counters(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        Self::ok(self.http.get(self.url("/_sim/counters")).send().await?)
            .await?
            .json()
            .await
            .context("decoding /_sim/counters")
    }

    pub async fn counter(&self, name: &str) -> anyhow::Result<u64> {
        Ok(self.counters().await?.get(name).copied().unwrap_or(0))
    }

    /// POSTs a JSON body to a platform-specific control route (`/_sim/tokens`, …).
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let resp = Self::ok(self.http.post(self.url(path)).json(body).send().await?).await?;
        let text = resp.text().await?;
        if text.is_empty() {
            Ok(serde_json::Value::Null)
        } else {
            serde_json::from_str(&text).context("decoding control response")
        }
    }

    /// GETs a platform-specific control route.
    pub async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        Self::ok(self.http.get(self.url(path)).send().await?)
            .await?
            .json()
            .await
            .context("decoding control response")
    }
}
