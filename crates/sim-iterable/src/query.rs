//! Query strings as Iterable reads them: pairs in order, repeated keys kept. Every handler that
//! takes a raw query (platform routes, exports, metrics, control routes) parses it here.

use axum::response::Response;

use crate::errors;

/// Query pairs in order, repeated keys kept.
pub struct Q(Vec<(String, String)>);

impl Q {
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn int(&self, k: &str) -> Result<Option<u64>, Response> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| errors::bad_params(format!("Invalid value for {k}: {v}"))),
        }
    }

    /// This query with `page` set to `page` (other parameters kept in order).
    pub fn with_page(&self, page: u64, page_size: u64) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        ser.append_pair("page", &page.to_string());
        ser.append_pair("pageSize", &page_size.to_string());
        for (k, v) in &self.0 {
            if k != "page" && k != "pageSize" {
                ser.append_pair(k, v);
            }
        }
        ser.finish()
    }
}
