//! What a started platform simulator tells its caller.

use crate::SimServer;

/// One upstream setting of CONTRACT §1 and the value that points it at a simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The configuration variable, e.g. `SHARPSEND_ITERABLE_US_URL`.
    pub env: &'static str,
    /// Its value: an origin (`http://127.0.0.1:PORT`), or a full URL where the variable is one
    /// (`SHARPSEND_KEAP_AUTHORIZE_URL`).
    pub url: String,
}

/// A sandbox credential a newcomer can paste into a connect call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// What it is, e.g. `iterable us server-side API key`.
    pub label: String,
    pub value: String,
}

/// A started platform simulator: its servers (stopped on drop), origins and credentials.
#[derive(Debug)]
pub struct Running {
    pub platform: &'static str,
    pub origins: Vec<Origin>,
    pub credentials: Vec<Credential>,
    pub servers: Vec<SimServer>,
}

impl Running {
    /// The value for a configuration variable, if this simulator serves it.
    pub fn origin(&self, env: &str) -> Option<&str> {
        self.origins
            .iter()
            .find(|o| o.env == env)
            .map(|o| o.url.as_str())
    }

    /// A sandbox credential by its label.
    pub fn credential(&self, label: &str) -> Option<&str> {
        self.credentials
            .iter()
            .find(|c| c.label == label)
            .map(|c| c.value.as_str())
    }
}
