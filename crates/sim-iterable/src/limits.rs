//! Iterable's published rate limits (SPEC endpoint descriptions), keyed per project or per key.

use sim_core::Rate;

/// Whose bucket a limit drains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Project,
    ApiKey,
}

/// The limit of `method route` (`route` is the templated path), or `None` where the SPEC states
/// none (target sends, list subscribe, webhooks: unlimited here).
pub fn limit_for(method: &str, route: &str) -> Option<(Rate, Scope)> {
    use Scope::{ApiKey, Project};
    let l = match (method, route) {
        ("POST", "/api/events/track") => (Rate::per_second(2000), Project),
        ("POST", "/api/users/update") => (Rate::per_second(500), Project),
        ("POST", "/api/events/trackBulk") => (Rate::per_second(10), Project),
        ("POST", "/api/users/bulkUpdate") => (Rate::per_second(5), Project),
        ("GET", "/api/users/getFields") => (Rate::per_second(3), Project),
        // The daily cap of `users/forget` (1000 per 24 h) is counted in `consent::forget`.
        ("POST", "/api/users/forget") | ("GET", "/api/users/forgotten") => {
            (Rate::per_second(3), Project)
        }
        ("GET", "/api/campaigns/metrics") => (Rate::per_minute(10), Project),
        ("GET", "/api/lists/getUsers") | ("GET", "/api/lists/{listId}/size") => {
            (Rate::per_minute(5), Project)
        }
        ("GET", "/api/export/data.json") | ("GET", "/api/export/data.csv") => {
            (Rate::per_minute(4), Project)
        }
        ("GET", "/api/catalogs") => (Rate::per_second(100), ApiKey),
        (
            "GET",
            "/api/campaigns"
            | "/api/campaigns/{id}"
            | "/api/channels"
            | "/api/lists"
            | "/api/messageTypes"
            | "/api/templates"
            | "/api/users/getByEmail"
            | "/api/users/{email}"
            | "/api/users/byUserId/{userId}"
            | "/api/users/byUserId"
            | "/api/events/{email}"
            | "/api/events/byUserId/{userId}",
        ) => (Rate::per_second(100), Project),
        ("DELETE", "/api/users/{email}" | "/api/users/byUserId/{userId}") => {
            (Rate::per_second(100), Project)
        }
        _ => return None,
    };
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_fact_sheet() {
        assert_eq!(
            limit_for("GET", "/api/export/data.json"),
            Some((Rate::per_minute(4), Scope::Project))
        );
        assert_eq!(
            limit_for("GET", "/api/campaigns"),
            Some((Rate::per_second(100), Scope::Project))
        );
        assert_eq!(limit_for("POST", "/api/email/target"), None);
    }
}
