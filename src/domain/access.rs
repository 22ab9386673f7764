//! Who may see and do what (DESIGN.md section 3), as pure functions over the roles a user
//! holds today. Every page and API call asks these, and nothing else, before acting.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A role held by a person on an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The first responsible person (书记).
    Secretary,
    /// A leadership member (班子成员, 一岗双责).
    Member,
    /// The coordinating office's people (政工部/党政办).
    Coordinator,
    Inspector,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Secretary, Role::Member, Role::Coordinator, Role::Inspector];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Secretary => "secretary",
            Role::Member => "member",
            Role::Coordinator => "coordinator",
            Role::Inspector => "inspector",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Role, ()> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}

/// A role the user holds today on the organisation whose tree path is `org_path`
/// (ids from the root down to the organisation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: Role,
    pub org_path: Vec<i64>,
}

impl Grant {
    fn org_id(&self) -> i64 {
        *self.org_path.last().expect("a path holds at least the organisation")
    }

    /// Whether the grant's organisation is `path`'s organisation or one of its ancestors.
    fn covers(&self, path: &[i64]) -> bool {
        path.starts_with(&self.org_path)
    }
}

/// The signed-in user, with what they hold today.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub person_id: i64,
    pub login: String,
    pub is_admin: bool,
    pub grants: Vec<Grant>,
}

impl Principal {
    /// Sees the organisation: admins everything; secretaries, coordinators and inspectors
    /// their organisation's subtree; members their organisation only.
    pub fn can_see(&self, org_path: &[i64]) -> bool {
        self.is_admin
            || self.grants.iter().any(|g| match g.role {
                Role::Member => g.org_path == org_path,
                Role::Secretary | Role::Coordinator | Role::Inspector => g.covers(org_path),
            })
    }

    /// Submits records for the organisation: its secretary (for every duty) or one of its
    /// members (for the duties that bind that member).
    pub fn can_submit(&self, org_path: &[i64], bound_person: Option<i64>) -> bool {
        self.is_admin
            || self.grants.iter().any(|g| {
                g.org_path == org_path
                    && match g.role {
                        Role::Secretary => true,
                        Role::Member => bound_person == Some(self.person_id),
                        Role::Coordinator | Role::Inspector => false,
                    }
            })
    }

    /// Reviews records of the organisation: the secretaries and coordinators of its
    /// parent; a root's records, an admin. Whether they submitted it is checked apart.
    pub fn can_review(&self, org_path: &[i64]) -> bool {
        if self.is_admin {
            return true;
        }
        let Some(parent) = org_path.len().checked_sub(2).map(|i| org_path[i]) else { return false };
        self.grants.iter().any(|g| matches!(g.role, Role::Secretary | Role::Coordinator) && g.org_id() == parent)
    }

    /// Configures organisations, people, rules and users; waives duties.
    pub fn can_configure(&self) -> bool {
        self.is_admin
    }

    /// The organisations the user records for, each with the person whose duties alone
    /// are theirs there: `None` as secretary (all the organisation's duties), their own
    /// person as a leadership member (the duties that bind them).
    pub fn record_targets(&self) -> Vec<(i64, Option<i64>)> {
        let mut targets: Vec<(i64, Option<i64>)> = Vec::new();
        for g in &self.grants {
            let org_id = g.org_id();
            match g.role {
                Role::Secretary => {
                    targets.retain(|(id, _)| *id != org_id);
                    targets.push((org_id, None));
                }
                Role::Member if !targets.iter().any(|(id, _)| *id == org_id) => {
                    targets.push((org_id, Some(self.person_id)));
                }
                _ => {}
            }
        }
        targets
    }

    /// The organisations whose subtrees the user sees, as the shortest set of paths
    /// (an admin sees everything and gets `None`).
    pub fn visible_roots(&self) -> Option<Vec<Vec<i64>>> {
        if self.is_admin {
            return None;
        }
        let mut roots: Vec<Vec<i64>> = self.grants.iter().map(|g| g.org_path.clone()).collect();
        roots.sort();
        roots.dedup();
        let all = roots.clone();
        roots.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q) && self.sees_subtree_of(q)));
        Some(roots)
    }

    fn sees_subtree_of(&self, path: &[i64]) -> bool {
        self.grants.iter().any(|g| g.org_path == path && g.role != Role::Member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tree:  1 ─ 2 ─ 4
    //              └ 3
    fn who(role: Role, path: &[i64]) -> Principal {
        Principal {
            user_id: 10,
            person_id: 20,
            login: "u".into(),
            is_admin: false,
            grants: vec![Grant { role, org_path: path.to_vec() }],
        }
    }

    #[test]
    fn a_secretary_sees_the_subtree_and_not_a_sibling_or_parent() {
        let s = who(Role::Secretary, &[1, 2]);
        assert!(s.can_see(&[1, 2]));
        assert!(s.can_see(&[1, 2, 4]));
        assert!(!s.can_see(&[1, 3]));
        assert!(!s.can_see(&[1]));
        assert!(!s.can_see(&[1, 22]), "a path prefix by digits is not an ancestor");
    }

    #[test]
    fn a_member_sees_only_their_organisation() {
        let m = who(Role::Member, &[1, 2]);
        assert!(m.can_see(&[1, 2]));
        assert!(!m.can_see(&[1, 2, 4]));
    }

    #[test]
    fn secretaries_submit_for_their_own_organisation_only() {
        let s = who(Role::Secretary, &[1, 2]);
        assert!(s.can_submit(&[1, 2], None));
        assert!(!s.can_submit(&[1, 2, 4], None));
        let c = who(Role::Coordinator, &[1, 2]);
        assert!(!c.can_submit(&[1, 2], None));
    }

    #[test]
    fn members_submit_only_for_duties_that_bind_them() {
        let m = who(Role::Member, &[1, 2]);
        assert!(m.can_submit(&[1, 2], Some(20)));
        assert!(!m.can_submit(&[1, 2], Some(21)));
        assert!(!m.can_submit(&[1, 2], None));
    }

    #[test]
    fn the_parents_secretary_and_coordinator_review_and_nobody_else() {
        assert!(who(Role::Secretary, &[1]).can_review(&[1, 2]));
        assert!(who(Role::Coordinator, &[1]).can_review(&[1, 2]));
        assert!(!who(Role::Secretary, &[1]).can_review(&[1, 2, 4]), "grandchildren go to their own parent");
        assert!(!who(Role::Secretary, &[1, 2]).can_review(&[1, 2]), "not one's own records");
        assert!(!who(Role::Inspector, &[1]).can_review(&[1, 2]));
        assert!(!who(Role::Member, &[1]).can_review(&[1, 2]));
        assert!(!who(Role::Secretary, &[1]).can_review(&[1]), "a root's records go to an admin");
    }

    #[test]
    fn admins_may_do_everything() {
        let a = Principal { is_admin: true, grants: vec![], ..who(Role::Member, &[1]) };
        assert!(a.can_see(&[9, 8]) && a.can_submit(&[9], None) && a.can_review(&[9]) && a.can_configure());
        assert_eq!(a.visible_roots(), None);
    }

    #[test]
    fn a_secretary_records_everything_and_a_member_only_their_own_duties() {
        let p = Principal {
            grants: vec![
                Grant { role: Role::Member, org_path: vec![1, 2] },
                Grant { role: Role::Secretary, org_path: vec![1, 2] },
                Grant { role: Role::Member, org_path: vec![1, 3] },
                Grant { role: Role::Coordinator, org_path: vec![1] },
            ],
            ..who(Role::Member, &[1])
        };
        assert_eq!(p.record_targets(), vec![(2, None), (3, Some(20))]);
    }

    #[test]
    fn visible_roots_drop_organisations_inside_another_visible_subtree() {
        let p = Principal {
            grants: vec![
                Grant { role: Role::Secretary, org_path: vec![1, 2] },
                Grant { role: Role::Member, org_path: vec![1, 2, 4] },
                Grant { role: Role::Member, org_path: vec![1, 3] },
            ],
            ..who(Role::Member, &[1])
        };
        assert_eq!(p.visible_roots(), Some(vec![vec![1, 2], vec![1, 3]]));
    }
}
