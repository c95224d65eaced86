//! The SignalR groups of the live stream, and who is in which.
//!
//! One execution has two disjoint groups: `execution:{id}` for members, whose stream carries
//! admin-only log lines as placeholders and no variables or state, and `execution-admin:{id}`
//! for platform administrators, whose stream is complete. A subscriber is in exactly one of them,
//! so an admin receives each message once. A scope's execution list is one group,
//! `history:{scope}`, for both (its rows hold nothing admin-only).
//!
//! The prefixes differ before their first `:`, so no execution id (ids may contain `:`) can make
//! one execution's member group another's admin group.

use crate::model::Scope;

const MEMBERS_PREFIX: &str = "execution:";
const ADMINS_PREFIX: &str = "execution-admin:";

/// Who a message of an execution's stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Members,
    Admins,
}

/// The group of one execution's detail page, for `audience`.
pub fn execution(audience: Audience, execution_id: &str) -> String {
    match audience {
        Audience::Members => format!("{MEMBERS_PREFIX}{execution_id}"),
        Audience::Admins => format!("{ADMINS_PREFIX}{execution_id}"),
    }
}

/// The group of one scope's execution list.
pub fn history(scope: &Scope) -> String {
    format!("history:{scope}")
}

/// Whether `group` is an execution's member group (its messages all have an admin twin).
pub fn is_members_execution_group(group: &str) -> bool {
    group.starts_with(MEMBERS_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_and_admin_groups_never_collide() {
        assert_eq!(execution(Audience::Members, "a"), "execution:a");
        assert_eq!(execution(Audience::Admins, "a"), "execution-admin:a");
        // An id that looks like a suffix cannot reach the other audience's group.
        assert_ne!(
            execution(Audience::Members, "admin:a"),
            execution(Audience::Admins, "a")
        );
        assert!(is_members_execution_group(&execution(
            Audience::Members,
            "x"
        )));
        assert!(!is_members_execution_group(&execution(
            Audience::Admins,
            "x"
        )));
        assert!(!is_members_execution_group(&history(&Scope::Global)));
        assert_eq!(history(&Scope::Global), "history:GLOBAL");
    }
}
