//! Keap's side of the consent ledger (issue 17; fact sheet `consent.md` §3). The opt-in status
//! belongs to the address, so one `PATCH` opts out every contact holding it; an erasure finds
//! each contact holding the address (several may) and deletes it. Every call goes through
//! [`tokens::call`] (a 401 refreshes the token once).

use domain::consent::{Applied, OptOut, Reason};

use super::{KeapSession, tokens};
use crate::{error::Result, state::AppState};

/// The `reason` Keap records with the opt-out (it shows in the contact's history).
pub fn reason_text(reason: Reason) -> String {
    format!("SharpSend: {}", reason.as_str())
}

/// The primary address of a v1 contact (as a hook's re-read gives it) and the ledger reason its
/// `email_status` calls for, if any. v1 has one status per contact and does not say which address
/// it describes (fact sheet §3.3); it is read as the primary's (`EMAIL1`, else the first).
pub fn v1_contact_opt_out(contact: &serde_json::Value) -> Option<(String, Reason)> {
    let reason = suppression_reason(contact.get("email_status")?.as_str()?)?;
    let addresses = contact.get("email_addresses")?.as_array()?;
    let primary = addresses
        .iter()
        .find(|a| a.get("field").and_then(|f| f.as_str()) == Some("EMAIL1"))
        .or_else(|| addresses.first())?;
    let email = primary.get("email")?.as_str()?.to_owned();
    Some((email, reason))
}

/// The ledger reason for an address's Keap email status (fact sheet `consent.md` §3.3), in
/// the v2 enum (`email_opt_status`, `RestEmailAddressStatus.status`) or the v1 contact's
/// `email_status` name: an unsubscribe (`MANUAL`, `ADMIN`, `LIST_UNSUBSCRIBE`), a complaint
/// (`SPAM`, `FEEDBACK`) or a hard bounce (`HARD_BOUNCE`, `INVALID`, `DEACTIVATED`). `None` for
/// every other status: marketable ones, and those that say no permission was given or only a
/// soft failure (`NON_MARKETABLE`, `UNENGAGED_NON_MARKETABLE`, `LOCKDOWN`, `BOUNCE`, `SYSTEM`),
/// which are not a reader's choice to record.
pub fn suppression_reason(status: &str) -> Option<Reason> {
    match status.trim() {
        "MANUAL" | "Manual" | "ADMIN" | "Admin" | "LIST_UNSUBSCRIBE" | "ListUnsubscribe" => {
            Some(Reason::Unsubscribed)
        }
        "SPAM" | "Spam" | "FEEDBACK" | "Feedback" => Some(Reason::Complained),
        "HARD_BOUNCE" | "HardBounce" | "INVALID" | "Invalid" | "DEACTIVATED" | "Deactivated" => {
            Some(Reason::Bounced)
        }
        _ => None,
    }
}

pub async fn opt_out(state: &AppState, s: &mut KeapSession, o: &OptOut) -> Result<Applied> {
    let keap = &state.connectors.keap;
    let reason = reason_text(o.reason);
    let status = tokens::call(state, s, |cred| {
        let (email, reason) = (&o.email, &reason);
        async move { keap.set_email_opt_in(&cred, email, false, reason).await }
    })
    .await?;
    Ok(match status {
        None => Applied::NothingToDo {
            detail: "Keap does not know this address".into(),
        },
        Some(st) if st.opted_in => {
            // Keap answered 200 yet the address is still marketable: not what was asked.
            return Err(crate::error::Error::coded(
                domain::ErrorCode::ConnectionFailed,
                format!(
                    "Keap kept the address marketable ({}) after the opt-out.",
                    st.status
                ),
            ));
        }
        Some(st) => Applied::Done {
            detail: format!(
                "PATCH /crm/rest/v2/emailAddresses/{{email}}/status opted_in=false (status {})",
                st.status
            ),
        },
    })
}

pub async fn erase(state: &AppState, s: &mut KeapSession, email: &str) -> Result<Applied> {
    let keap = &state.connectors.keap;
    let ids = tokens::call(state, s, |cred| async move {
        keap.contact_ids_holding(&cred, email).await
    })
    .await?;
    if ids.is_empty() {
        return Ok(Applied::NothingToDo {
            detail: "Keap has no contact with this address".into(),
        });
    }
    let mut deleted = 0;
    for id in &ids {
        let gone = tokens::call(state, s, |cred| async move {
            keap.delete_contact(&cred, id).await
        })
        .await?;
        if gone {
            deleted += 1;
        }
    }
    Ok(Applied::Done {
        detail: format!(
            "DELETE /crm/rest/v2/contacts/{{id}} for {deleted} of {} contacts holding the address",
            ids.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_fact_sheets_classes_in_both_versions() {
        for (v2, v1, reason) in [
            ("MANUAL", "Manual", Some(Reason::Unsubscribed)),
            ("ADMIN", "Admin", Some(Reason::Unsubscribed)),
            (
                "LIST_UNSUBSCRIBE",
                "ListUnsubscribe",
                Some(Reason::Unsubscribed),
            ),
            ("SPAM", "Spam", Some(Reason::Complained)),
            ("FEEDBACK", "Feedback", Some(Reason::Complained)),
            ("HARD_BOUNCE", "HardBounce", Some(Reason::Bounced)),
            ("INVALID", "Invalid", Some(Reason::Bounced)),
            ("DEACTIVATED", "Deactivated", Some(Reason::Bounced)),
            ("BOUNCE", "Bounce", None),
            ("SYSTEM", "System", None),
            ("NON_MARKETABLE", "NonMarketable", None),
            ("UNENGAGED_NON_MARKETABLE", "UnengagedNonMarketable", None),
            ("LOCKDOWN", "Lockdown", None),
            ("SINGLE_OPT_IN", "SingleOptIn", None),
            ("CONFIRMED", "Confirmed", None),
        ] {
            assert_eq!(suppression_reason(v2), reason, "{v2}");
            assert_eq!(suppression_reason(v1), reason, "{v1}");
        }
    }
}
