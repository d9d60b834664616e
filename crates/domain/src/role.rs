//! Roles a person holds on the proxy, and on a team. The strings are LiteLLM's, so rows, tokens
//! and API bodies written by LiteLLM keep their meaning here.

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A person's role on the whole proxy (`user_role` in LiteLLM's user table). Serialised as
/// [`Role::as_str`], so the wire form and the parser cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything: users, teams, invitations, all keys, all spend, models.
    ProxyAdmin,
    /// Sees everything an admin sees; changes nothing but their own password.
    ProxyAdminViewer,
    /// Manages their own keys and sees their own spend.
    InternalUser,
    /// Sees their own keys and spend; changes nothing but their own password.
    InternalUserViewer,
}

impl Role {
    /// Every role, most powerful first (the order `/user/available_roles` lists them in).
    pub const ALL: [Role; 4] = [
        Role::ProxyAdmin,
        Role::ProxyAdminViewer,
        Role::InternalUser,
        Role::InternalUserViewer,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::ProxyAdmin => "proxy_admin",
            Role::ProxyAdminViewer => "proxy_admin_viewer",
            Role::InternalUser => "internal_user",
            Role::InternalUserViewer => "internal_user_viewer",
        }
    }

    /// Exactly one of the four strings; anything else (other case, whitespace, LiteLLM's
    /// org/team/customer roles) is `None`, so callers decide explicitly what an unknown role means.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Full administrator. Deliberately false for `proxy_admin_viewer`, so a check written as
    /// `is_admin()` can never let a read-only admin write.
    pub const fn is_admin(self) -> bool {
        matches!(self, Role::ProxyAdmin)
    }

    /// Sees every user's rows (LiteLLM's "admin view" roles), whether or not it may change them.
    pub const fn sees_all(self) -> bool {
        matches!(self, Role::ProxyAdmin | Role::ProxyAdminViewer)
    }

    /// Read-only roles.
    pub const fn is_viewer(self) -> bool {
        matches!(self, Role::ProxyAdminViewer | Role::InternalUserViewer)
    }

    /// May create, change or delete anything at all (their own keys at least).
    pub const fn can_write(self) -> bool {
        !self.is_viewer()
    }

    /// Short label the UI shows in role pickers (LiteLLM's labels).
    pub const fn ui_label(self) -> &'static str {
        match self {
            Role::ProxyAdmin => "Admin (All Permissions)",
            Role::ProxyAdminViewer => "Admin (View Only)",
            Role::InternalUser => "Internal User (Create/Delete/View)",
            Role::InternalUserViewer => "Internal User (View Only)",
        }
    }

    /// One sentence on what the role may do, for `/user/available_roles` and the UI.
    pub const fn description(self) -> &'static str {
        match self {
            Role::ProxyAdmin => {
                "Manages everything: users, teams, invitations, models, every key and all spend."
            }
            Role::ProxyAdminViewer => {
                "Can view every user, team, key and all spend, but cannot change anything."
            }
            Role::InternalUser => {
                "Can create, view and delete their own keys and view their own spend."
            }
            Role::InternalUserViewer => {
                "Can view their own keys and their own spend, but cannot create or delete keys."
            }
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; expected one of proxy_admin, proxy_admin_viewer, internal_user, internal_user_viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s).ok_or_else(|| UnknownRole(s.to_string()))
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const NAMES: &[&str] = &[
            "proxy_admin",
            "proxy_admin_viewer",
            "internal_user",
            "internal_user_viewer",
        ];
        let s = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Role::parse(&s).ok_or_else(|| D::Error::unknown_variant(&s, NAMES))
    }
}

/// A member's role within one team (`members_with_roles[].role`). LiteLLM's default is `user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TeamRole {
    /// Manages the team's members and any key of the team.
    Admin,
    /// Uses the team; key rights come from the team's `team_member_permissions`.
    #[default]
    User,
}

impl TeamRole {
    pub const ALL: [TeamRole; 2] = [TeamRole::Admin, TeamRole::User];

    pub const fn as_str(self) -> &'static str {
        match self {
            TeamRole::Admin => "admin",
            TeamRole::User => "user",
        }
    }

    /// Exactly `admin` or `user`.
    pub fn parse(s: &str) -> Option<TeamRole> {
        TeamRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub const fn is_admin(self) -> bool {
        matches!(self, TeamRole::Admin)
    }
}

impl fmt::Display for TeamRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TeamRole {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TeamRole {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const NAMES: &[&str] = &["admin", "user"];
        let s = std::borrow::Cow::<str>::deserialize(deserializer)?;
        TeamRole::parse(&s).ok_or_else(|| D::Error::unknown_variant(&s, NAMES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error as DeError, StrDeserializer};
    use serde::de::IntoDeserializer;

    // The domain crate has no JSON dependency; serde's own value deserializer exercises the
    // same `Deserialize` impls a JSON body would.
    fn de_role(s: &str) -> Result<Role, DeError> {
        let d: StrDeserializer<'_, DeError> = s.into_deserializer();
        Role::deserialize(d)
    }

    fn de_team_role(s: &str) -> Result<TeamRole, DeError> {
        let d: StrDeserializer<'_, DeError> = s.into_deserializer();
        TeamRole::deserialize(d)
    }

    #[test]
    fn strings_round_trip_through_parse_display_and_serde() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(role.to_string(), role.as_str());
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(de_role(role.as_str()).unwrap(), role);
        }
        for role in TeamRole::ALL {
            assert_eq!(TeamRole::parse(role.as_str()), Some(role));
            assert_eq!(role.to_string(), role.as_str());
            assert_eq!(de_team_role(role.as_str()).unwrap(), role);
        }
    }

    #[test]
    fn litellm_strings_are_exact() {
        assert_eq!(Role::ProxyAdmin.as_str(), "proxy_admin");
        assert_eq!(Role::ProxyAdminViewer.as_str(), "proxy_admin_viewer");
        assert_eq!(Role::InternalUser.as_str(), "internal_user");
        assert_eq!(Role::InternalUserViewer.as_str(), "internal_user_viewer");
        assert_eq!(TeamRole::Admin.as_str(), "admin");
        assert_eq!(TeamRole::User.as_str(), "user");
        assert_eq!(TeamRole::default(), TeamRole::User);
    }

    #[test]
    fn only_the_four_exact_strings_parse() {
        for bad in [
            "",
            "Proxy_Admin",
            "PROXY_ADMIN",
            " proxy_admin",
            "proxy_admin ",
            "admin",
            "app_owner",
            "org_admin",
            "customer",
            "team",
        ] {
            assert_eq!(Role::parse(bad), None, "{bad:?}");
            assert!(bad.parse::<Role>().is_err());
            let err = de_role(bad).unwrap_err().to_string();
            assert!(err.contains("internal_user_viewer"), "{err}");
        }
        for bad in ["", "Admin", "member", "owner"] {
            assert_eq!(TeamRole::parse(bad), None, "{bad:?}");
            assert!(de_team_role(bad).is_err());
        }
    }

    #[test]
    fn capabilities() {
        use Role::*;
        assert!(ProxyAdmin.is_admin());
        assert!(!ProxyAdminViewer.is_admin());
        assert!(!InternalUser.is_admin());
        assert!(!InternalUserViewer.is_admin());

        assert!(ProxyAdmin.sees_all() && ProxyAdminViewer.sees_all());
        assert!(!InternalUser.sees_all() && !InternalUserViewer.sees_all());

        assert!(ProxyAdminViewer.is_viewer() && InternalUserViewer.is_viewer());
        assert!(!ProxyAdmin.is_viewer() && !InternalUser.is_viewer());
        for role in Role::ALL {
            assert_eq!(role.can_write(), !role.is_viewer());
        }
        assert!(TeamRole::Admin.is_admin() && !TeamRole::User.is_admin());
    }

    #[test]
    fn labels_match_litellm_and_descriptions_exist() {
        assert_eq!(Role::ProxyAdmin.ui_label(), "Admin (All Permissions)");
        assert_eq!(Role::ProxyAdminViewer.ui_label(), "Admin (View Only)");
        assert_eq!(
            Role::InternalUser.ui_label(),
            "Internal User (Create/Delete/View)"
        );
        assert_eq!(
            Role::InternalUserViewer.ui_label(),
            "Internal User (View Only)"
        );
        for role in Role::ALL {
            assert!(!role.description().is_empty());
        }
    }
}
