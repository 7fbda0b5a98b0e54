//! Faults a test can inject on a simulated path.

use serde::{Deserialize, Serialize};

/// What happens to a matching request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// Wait `latencyMs` before handling the request normally.
    Latency,
    /// Answer `status` (default 503) with a small JSON body instead of handling the request.
    Status,
    /// Send headers, then drop the connection mid-body.
    Reset,
    /// Answer 200 with a truncated, unparseable JSON body.
    Malformed,
    /// Answer with the platform's own 429 response (its body and headers).
    RateLimit,
}

/// One injected fault. Serialised in camelCase for the `/_sim/faults` control route.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// Only requests with this method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Requests whose path starts with this prefix.
    pub path: String,
    pub kind: FaultKind,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// How many matching requests it applies to; absent means until cleared.
    #[serde(default)]
    pub times: Option<u32>,
    /// Matching requests to let through untouched before the fault applies.
    #[serde(default)]
    pub after: Option<u32>,
}

impl Fault {
    /// A fault of `kind` on every request to paths starting with `path`.
    pub fn new(path: impl Into<String>, kind: FaultKind) -> Self {
        Self {
            method: None,
            path: path.into(),
            kind,
            status: None,
            latency_ms: None,
            times: None,
            after: None,
        }
    }

    pub fn status(path: impl Into<String>, status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::new(path, FaultKind::Status)
        }
    }

    pub fn latency(path: impl Into<String>, ms: u64) -> Self {
        Self {
            latency_ms: Some(ms),
            ..Self::new(path, FaultKind::Latency)
        }
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    pub fn after(mut self, n: u32) -> Self {
        self.after = Some(n);
        self
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        path.starts_with(&self.path)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// A fault with its remaining budget, as kept by the control state.
#[derive(Debug)]
pub(crate) struct ActiveFault {
    pub fault: Fault,
    pub skip: u32,
    pub remaining: Option<u32>,
}

impl ActiveFault {
    pub fn new(fault: Fault) -> Self {
        Self {
            skip: fault.after.unwrap_or(0),
            remaining: fault.times,
            fault,
        }
    }

    /// Consumes one application if this request should be faulted.
    pub fn take(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        match &mut self.remaining {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    pub fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_and_times_bound_the_fault() {
        let mut f = ActiveFault::new(Fault::status("/a", 500).after(1).times(2));
        assert!(!f.take());
        assert!(f.take());
        assert!(f.take());
        assert!(!f.take());
        assert!(f.exhausted());
    }

    #[test]
    fn matches_prefix_and_method() {
        let f = Fault::status("/api/campaigns", 500).method("get");
        assert!(f.matches("GET", "/api/campaigns/123"));
        assert!(!f.matches("POST", "/api/campaigns"));
        assert!(!f.matches("GET", "/api/lists"));
    }
}
