//! The route policy of the management API: one table saying, for every route, what each role may
//! do there. The web layer asks [`decide`] before running a handler; handlers then scope rows to
//! the caller where the table says [`Grant::Scoped`] and make their own team/org checks where it
//! says [`Grant::HandlerDecides`]. Keeping every route in one place lets one test check the whole
//! matrix (role × route, as LiteLLM grants them) at once.
//!
//! Routes missing from the table fail closed: only `proxy_admin` passes.

use crate::role::Role;

/// HTTP methods the management API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// The upper-case method as it appears on the wire. `HEAD` is read as `GET` (same rights, no
    /// body); anything else is `None`.
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "GET" | "HEAD" => Some(Method::Get),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// Whether the method only reads.
    pub const fn is_read(self) -> bool {
        matches!(self, Method::Get)
    }
}

/// How LiteLLM answers a refusal; kept so clients that match on status codes keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Denial {
    /// 401 "Authentication Error, Only proxy admin can be used to generate, delete, update info
    /// for new keys/users/teams. …": LiteLLM's answer to a non-admin on an admin route.
    AdminOnly,
    /// 403 "user not allowed to access this route, role= …": LiteLLM's answer to a read-only
    /// admin attempting a write, and to self-managed routes a role may not use.
    Forbidden,
    /// 400 "Admin-only endpoint. Not allowed to access this., your role=…": the invitation
    /// handlers' quirk.
    Invitation,
}

impl Denial {
    pub const fn status(self) -> u16 {
        match self {
            Denial::AdminOnly => 401,
            Denial::Forbidden => 403,
            Denial::Invitation => 400,
        }
    }

    /// LiteLLM's message for this refusal. `user_id` is masked; `None` reads "unknown", as
    /// LiteLLM writes it when the caller has no user row.
    pub fn message(self, path: &str, role: Role, user_id: Option<&str>) -> String {
        match self {
            Denial::AdminOnly => format!(
                "Authentication Error, Only proxy admin can be used to generate, delete, update \
                 info for new keys/users/teams. Route={path}. Your role={role}. Your user_id={}",
                user_id.map_or_else(|| "unknown".to_string(), mask_user_id)
            ),
            Denial::Forbidden => format!(
                "user not allowed to access this route, role= {role}. Trying to access: {path}"
            ),
            Denial::Invitation => {
                format!("Admin-only endpoint. Not allowed to access this., your role={role}")
            }
        }
    }
}

/// What one role may do on one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    /// Allowed, on any row.
    Allow,
    /// Allowed; the handler limits it to the caller's own rows (own user, own keys, own teams).
    Scoped,
    /// Allowed only for some callers (team admin, org admin, key owner with a team permission,
    /// the master key itself); the handler knows which and refuses the rest.
    HandlerDecides,
    Deny(Denial),
}

/// What every role may do on one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    pub proxy_admin: Grant,
    pub proxy_admin_viewer: Grant,
    pub internal_user: Grant,
    pub internal_user_viewer: Grant,
}

impl Access {
    pub const fn for_role(&self, role: Role) -> Grant {
        match role {
            Role::ProxyAdmin => self.proxy_admin,
            Role::ProxyAdminViewer => self.proxy_admin_viewer,
            Role::InternalUser => self.internal_user,
            Role::InternalUserViewer => self.internal_user_viewer,
        }
    }
}

/// One row of the policy table. `path` segments written `{name}` match any one non-empty segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRule {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

impl RouteRule {
    fn has_params(&self) -> bool {
        self.path.contains('{')
    }

    fn matches(&self, path: &str) -> bool {
        if !self.has_params() {
            return self.path == path;
        }
        let mut want = self.path.split('/');
        let mut got = path.split('/');
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some(w), Some(g)) => {
                    let is_param = w.starts_with('{') && w.ends_with('}');
                    let fits = if is_param { !g.is_empty() } else { w == g };
                    if !fits {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }
}

/// The outcome for one request, before the handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    AllowScoped,
    HandlerDecides,
    Deny { status: u16, message: String },
}

/// Every rule of the policy, for tests and the OpenAPI/RBAC documentation.
pub fn routes() -> &'static [RouteRule] {
    ROUTES
}

/// The rule for `method path`, if the table has one. Exact paths win over `{param}` patterns.
pub fn rule_for(method: &str, path: &str) -> Option<&'static RouteRule> {
    let method = Method::parse(method)?;
    let path = strip_query(path);
    let candidates = || ROUTES.iter().filter(move |r| r.method == method);
    candidates()
        .find(|r| !r.has_params() && r.path == path)
        .or_else(|| candidates().find(|r| r.has_params() && r.matches(path)))
}

/// What `role` may do on `method path` (`path` may carry a query string; it is ignored).
pub fn decide(method: &str, path: &str, role: Role) -> Decision {
    decide_for_user(method, path, role, None)
}

/// [`decide`], with the caller's user id for LiteLLM's 401 message (shown masked).
pub fn decide_for_user(method: &str, path: &str, role: Role, user_id: Option<&str>) -> Decision {
    let path = strip_query(path);
    let grant = match rule_for(method, path) {
        Some(rule) => rule.access.for_role(role),
        None => unknown_route_grant(role),
    };
    match grant {
        Grant::Allow => Decision::Allow,
        Grant::Scoped => Decision::AllowScoped,
        Grant::HandlerDecides => Decision::HandlerDecides,
        Grant::Deny(denial) => Decision::Deny {
            status: denial.status(),
            message: denial.message(path, role, user_id),
        },
    }
}

/// Fail closed: a route nobody classified is an admin route. Viewers get LiteLLM's viewer 403,
/// other non-admins its 401.
const fn unknown_route_grant(role: Role) -> Grant {
    match role {
        Role::ProxyAdmin => Grant::Allow,
        Role::ProxyAdminViewer => Grant::Deny(Denial::Forbidden),
        Role::InternalUser | Role::InternalUserViewer => Grant::Deny(Denial::AdminOnly),
    }
}

fn strip_query(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// LiteLLM's masking: first six and last two characters, the rest starred; short ids fully.
fn mask_user_id(user_id: &str) -> String {
    let chars: Vec<char> = user_id.chars().collect();
    let n = chars.len();
    if n <= 8 {
        return "*".repeat(n);
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[n - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(n - 8))
}

// Short names keep each table row on one line, readable as a row of the matrix.
const A: Grant = Grant::Allow;
const S: Grant = Grant::Scoped;
const H: Grant = Grant::HandlerDecides;
const D401: Grant = Grant::Deny(Denial::AdminOnly);
const D403: Grant = Grant::Deny(Denial::Forbidden);
const D400: Grant = Grant::Deny(Denial::Invitation);

/// Columns: proxy_admin, proxy_admin_viewer, internal_user, internal_user_viewer.
const fn rule(
    method: Method,
    path: &'static str,
    proxy_admin: Grant,
    proxy_admin_viewer: Grant,
    internal_user: Grant,
    internal_user_viewer: Grant,
) -> RouteRule {
    RouteRule {
        method,
        path,
        access: Access {
            proxy_admin,
            proxy_admin_viewer,
            internal_user,
            internal_user_viewer,
        },
    }
}

use Method::{Get as GET, Post as POST};

#[rustfmt::skip]
static ROUTES: &[RouteRule] = &[
    // Users. Non-admins read only themselves; creating, changing and deleting users is admin
    // work. A read-only admin may not call /user/update at all (LiteLLM lets it send
    // `user_email`/`password` only; Tollgate keeps viewers strictly read-only).
    rule(POST, "/user/new",                       A, D403, D401, D401),
    rule(GET,  "/user/info",                      A, A,    S,    S),
    rule(POST, "/user/update",                    A, D403, D401, D401),
    rule(POST, "/user/bulk_update",               A, D403, D401, D401),
    rule(POST, "/user/delete",                    A, D403, D401, D401),
    rule(GET,  "/user/list",                      A, A,    D403, D403),
    rule(GET,  "/user/available_roles",           A, A,    A,    A),
    // Acts on the caller only, whoever they are.
    rule(POST, "/user/password/change",           A, A,    A,    A),
    rule(GET,  "/user/daily/activity",            A, A,    S,    S),
    rule(GET,  "/user/daily/activity/aggregated", A, A,    S,    S),

    // Teams. Team admins are internal users whose team membership the handler checks.
    rule(POST, "/team/new",                       A, D403, D401, D401),
    rule(GET,  "/team/info",                      A, A,    S,    S),
    rule(GET,  "/team/list",                      A, A,    S,    S),
    rule(GET,  "/v2/team/list",                   A, A,    S,    S),
    rule(POST, "/team/update",                    A, D403, H,    D401),
    rule(POST, "/team/delete",                    A, D403, D401, D401),
    rule(POST, "/team/member_add",                A, D403, H,    D401),
    rule(POST, "/team/member_delete",             A, D403, H,    D401),
    rule(POST, "/team/member_update",             A, D403, H,    D401),
    // Spend of teams: members read their own teams' (the handler checks membership).
    rule(GET,  "/team/daily/activity",            A, A,    S,    S),

    // Invitations: every refusal is LiteLLM's 400.
    rule(POST, "/invitation/new",                 A, D400, H,    D400),
    rule(GET,  "/invitation/info",                A, A,    D400, D400),
    rule(POST, "/invitation/update",              A, D400, D400, D400),
    rule(POST, "/invitation/delete",              A, D400, H,    D400),

    // Keys. Internal users manage their own keys (and, as team admins, their team's keys; the
    // handler tells which); viewers of either kind never write a key.
    rule(POST, "/key/generate",                   A, D403, S,    D401),
    rule(GET,  "/key/info",                       A, A,    S,    S),
    rule(GET,  "/key/list",                       A, A,    S,    S),
    rule(POST, "/key/update",                     A, D403, S,    D401),
    rule(POST, "/key/delete",                     A, D403, S,    D401),
    rule(POST, "/key/regenerate",                 A, D403, S,    D401),
    rule(POST, "/key/{key}/regenerate",           A, D403, S,    D401),
    rule(POST, "/key/block",                      A, D403, H,    D401),
    rule(POST, "/key/unblock",                    A, D403, H,    D401),

    // Spend. Own spend for everyone; global views for the admin roles only.
    rule(GET,  "/spend/logs",                     A, A,    S,    S),
    rule(GET,  "/spend/logs/v2",                  A, A,    S,    S),
    rule(GET,  "/spend/tags",                     A, A,    S,    S),
    rule(GET,  "/spend/logs/ui",                  A, A,    S,    S),
    rule(GET,  "/spend/logs/ui/{request_id}",     A, A,    S,    S),
    rule(GET,  "/spend/keys",                     A, A,    S,    S),
    rule(GET,  "/spend/users",                    A, A,    S,    S),
    rule(GET,  "/global/spend",                   A, A,    D401, D401),
    rule(GET,  "/global/spend/logs",              A, A,    D401, D401),
    rule(GET,  "/global/spend/keys",              A, A,    D401, D401),
    rule(GET,  "/global/spend/teams",             A, A,    D401, D401),
    rule(GET,  "/global/spend/models",            A, A,    D401, D401),
    rule(GET,  "/global/spend/tags",              A, A,    D401, D401),
    rule(GET,  "/global/spend/report",            A, A,    D401, D401),
    rule(GET,  "/global/spend/all_tag_names",     A, A,    D401, D401),
    rule(POST, "/global/spend/end_users",         A, A,    D401, D401),
    rule(GET,  "/global/all_end_users",           A, A,    D401, D401),
    // Anyone for their own key, user or key's team; the handler scopes.
    rule(GET,  "/key/spend/report",               A, A,    H,    H),
    rule(GET,  "/user/spend/report",              A, A,    H,    H),
    rule(GET,  "/team/spend/report",              A, A,    H,    H),
    rule(GET,  "/global/spend/provider",          A, A,    D401, D401),
    // Master key only: a proxy_admin *user* is refused by the handler.
    rule(POST, "/global/spend/reset",             H, D403, D401, D401),
    rule(POST, "/global/spend/refresh",           A, D403, D401, D401),
    // Internal users see their own calls; LiteLLM refuses its read-only internal users here.
    rule(GET,  "/global/activity",                A, A,    S,    D401),
    rule(GET,  "/global/activity/model",          A, A,    S,    D401),

    rule(GET,  "/audit",                          A, A,    D401, D401),
    rule(GET,  "/audit/{id}",                     A, A,    D401, D401),

    // Session and UI settings: about the caller's own session, or public to any signed-in user.
    rule(POST, "/session/logout",                 A, A,    A,    A),
    rule(GET,  "/sso/get/ui_settings",            A, A,    A,    A),

    // Models: non-admins see the models their keys/teams may call.
    rule(GET,  "/model/info",                     A, A,    S,    S),
    rule(GET,  "/v1/model/info",                  A, A,    S,    S),
    rule(GET,  "/v2/model/info",                  A, A,    S,    S),
    rule(GET,  "/model_group/info",               A, A,    S,    S),
    rule(GET,  "/v1/models",                      A, A,    S,    S),
    rule(GET,  "/models",                         A, A,    S,    S),
    rule(GET,  "/v1/models/{model}",              A, A,    S,    S),
    rule(GET,  "/models/{model}",                 A, A,    S,    S),
    rule(POST, "/model/new",                      A, D403, H,    D401),
    rule(POST, "/model/update",                   A, D403, H,    D401),
    rule(POST, "/model/delete",                   A, D403, H,    D401),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Routes whose answer does not depend on whose data it is: the only ones an internal role
    /// may get a plain (unscoped) `Allow` on.
    const CALLER_INDEPENDENT: &[&str] = &[
        "/user/available_roles",
        "/user/password/change",
        "/session/logout",
        "/sso/get/ui_settings",
    ];

    /// Writes a viewer may still make: both act on the caller alone.
    /// What a viewer may POST: their own password and session, and a read LiteLLM takes as a
    /// POST body.
    const VIEWER_WRITES: &[&str] = &[
        "/user/password/change",
        "/session/logout",
        "/global/spend/end_users",
    ];

    fn is_invitation(rule: &RouteRule) -> bool {
        rule.path.starts_with("/invitation/")
    }

    /// A concrete path that the rule matches: `{param}` segments filled in.
    fn concrete(path: &str) -> String {
        path.split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "some-id-1234567"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn rank(g: Grant) -> u8 {
        match g {
            Grant::Deny(_) => 0,
            Grant::HandlerDecides => 1,
            Grant::Scoped => 2,
            Grant::Allow => 3,
        }
    }

    fn expected(g: Grant) -> Decision {
        match g {
            Grant::Allow => Decision::Allow,
            Grant::Scoped => Decision::AllowScoped,
            Grant::HandlerDecides => Decision::HandlerDecides,
            Grant::Deny(d) => Decision::Deny {
                status: d.status(),
                message: String::new(),
            },
        }
    }

    fn same_kind(a: &Decision, b: &Decision) -> bool {
        match (a, b) {
            (Decision::Deny { status: x, .. }, Decision::Deny { status: y, .. }) => x == y,
            _ => a == b,
        }
    }

    fn grant(method: &str, path: &str, role: Role) -> Grant {
        match rule_for(method, path) {
            Some(r) => r.access.for_role(role),
            None => panic!("no rule for {method} {path}"),
        }
    }

    #[test]
    fn table_is_well_formed() {
        let mut seen = HashSet::new();
        for r in routes() {
            assert!(
                seen.insert((r.method, r.path)),
                "duplicate {} {}",
                r.method.as_str(),
                r.path
            );
            assert!(r.path.starts_with('/'), "{}", r.path);
            assert!(r.path.len() == 1 || !r.path.ends_with('/'), "{}", r.path);
            assert!(
                !r.path.contains('?') && !r.path.contains("//"),
                "{}",
                r.path
            );
            // Every rule must be reachable: its own concrete path resolves to it.
            let found = rule_for(r.method.as_str(), &concrete(r.path));
            assert_eq!(found, Some(r), "{} {}", r.method.as_str(), r.path);
        }
    }

    #[test]
    fn required_routes_are_covered() {
        let required = [
            ("POST", "/user/new"),
            ("GET", "/user/info"),
            ("POST", "/user/update"),
            ("POST", "/user/delete"),
            ("GET", "/user/list"),
            ("GET", "/user/available_roles"),
            ("POST", "/user/password/change"),
            ("POST", "/team/new"),
            ("GET", "/team/info"),
            ("GET", "/team/list"),
            ("POST", "/team/update"),
            ("POST", "/team/delete"),
            ("POST", "/team/member_add"),
            ("POST", "/team/member_delete"),
            ("POST", "/team/member_update"),
            ("POST", "/invitation/new"),
            ("GET", "/invitation/info"),
            ("POST", "/invitation/update"),
            ("POST", "/invitation/delete"),
            ("POST", "/key/generate"),
            ("GET", "/key/info"),
            ("GET", "/key/list"),
            ("POST", "/key/update"),
            ("POST", "/key/delete"),
            ("POST", "/key/regenerate"),
            ("POST", "/key/block"),
            ("POST", "/key/unblock"),
            ("GET", "/spend/logs"),
            ("GET", "/user/daily/activity"),
            ("GET", "/team/daily/activity"),
            ("GET", "/spend/logs/v2"),
            ("GET", "/global/spend"),
            ("GET", "/global/spend/keys"),
            ("GET", "/global/spend/teams"),
            ("GET", "/global/spend/models"),
            ("GET", "/global/spend/logs"),
            ("GET", "/global/spend/provider"),
            ("GET", "/spend/keys"),
            ("GET", "/spend/users"),
            ("GET", "/audit"),
            ("POST", "/session/logout"),
            ("GET", "/sso/get/ui_settings"),
            ("GET", "/model/info"),
            ("GET", "/v1/models"),
        ];
        for (m, p) in required {
            assert!(rule_for(m, p).is_some(), "missing {m} {p}");
        }
    }

    /// Every rule × every role: `decide` agrees with the table, and the matrix invariants hold.
    #[test]
    fn every_rule_and_role_obeys_the_invariants() {
        for r in routes() {
            let path = concrete(r.path);
            let route = format!("{} {}", r.method.as_str(), r.path);
            for role in Role::ALL {
                let g = r.access.for_role(role);
                let d = decide(r.method.as_str(), &path, role);
                assert!(same_kind(&d, &expected(g)), "{route} as {role}: {d:?}");
                if let Decision::Deny { message, .. } = &d {
                    assert!(message.contains(role.as_str()), "{route}: {message}");
                }

                // The admin is never refused by the table.
                if role == Role::ProxyAdmin {
                    assert!(!matches!(g, Grant::Deny(_)), "{route}");
                }

                // Viewers write nothing but their own password and session (which they always
                // may), and POST nothing else but a read.
                if role.is_viewer() && !r.method.is_read() {
                    if !VIEWER_WRITES.contains(&r.path) {
                        assert!(matches!(g, Grant::Deny(_)), "{route} as {role}: {g:?}");
                    } else if r.path != "/global/spend/end_users" {
                        assert!(!matches!(g, Grant::Deny(_)), "{route} as {role}: {g:?}");
                    }
                }

                // internal_user_viewer never writes a key (LiteLLM #6626, #8211).
                if role == Role::InternalUserViewer
                    && r.path.starts_with("/key/")
                    && !r.method.is_read()
                {
                    assert!(matches!(g, Grant::Deny(_)), "{route}");
                }

                // Internal roles see only their own rows, except on caller-independent routes.
                if !role.sees_all() && g == Grant::Allow {
                    assert!(CALLER_INDEPENDENT.contains(&r.path), "{route} as {role}");
                }

                // The read-only admin reads everything the admin reads.
                if role == Role::ProxyAdminViewer && r.method.is_read() {
                    assert_eq!(g, Grant::Allow, "{route}");
                }

                // Denial codes follow LiteLLM: 400 on invitations only; never 401 for the viewer
                // admin (its refusals are the viewer 403).
                if let Grant::Deny(denial) = g {
                    assert_eq!(denial == Denial::Invitation, is_invitation(r), "{route}");
                    if role == Role::ProxyAdminViewer {
                        assert_ne!(denial, Denial::AdminOnly, "{route}");
                    }
                }
            }

            // No role gets more than a stronger one.
            let a = &r.access;
            assert!(
                rank(a.internal_user_viewer) <= rank(a.internal_user),
                "{route}"
            );
            assert!(
                rank(a.internal_user_viewer) <= rank(a.proxy_admin_viewer),
                "{route}"
            );
            assert!(rank(a.internal_user) <= rank(a.proxy_admin), "{route}");
            assert!(rank(a.proxy_admin_viewer) <= rank(a.proxy_admin), "{route}");
        }
    }

    #[test]
    fn only_proxy_admin_creates_and_deletes_users_and_creates_teams() {
        for (m, p) in [
            ("POST", "/user/new"),
            ("POST", "/user/delete"),
            ("POST", "/team/new"),
            ("POST", "/team/delete"),
            ("POST", "/user/update"),
        ] {
            assert_eq!(decide(m, p, Role::ProxyAdmin), Decision::Allow, "{p}");
            for role in [
                Role::ProxyAdminViewer,
                Role::InternalUser,
                Role::InternalUserViewer,
            ] {
                assert!(
                    matches!(decide(m, p, role), Decision::Deny { .. }),
                    "{p} {role}"
                );
            }
        }
    }

    #[test]
    fn everyone_reads_their_own_user_info() {
        assert_eq!(
            decide("GET", "/user/info", Role::ProxyAdmin),
            Decision::Allow
        );
        assert_eq!(
            decide("GET", "/user/info", Role::ProxyAdminViewer),
            Decision::Allow
        );
        for role in [Role::InternalUser, Role::InternalUserViewer] {
            assert_eq!(decide("GET", "/user/info", role), Decision::AllowScoped);
        }
    }

    #[test]
    fn internal_user_manages_own_keys_and_team_admin_work_goes_to_the_handler() {
        let iu = Role::InternalUser;
        for p in [
            "/key/generate",
            "/key/update",
            "/key/delete",
            "/key/regenerate",
        ] {
            assert_eq!(decide("POST", p, iu), Decision::AllowScoped, "{p}");
        }
        assert_eq!(
            decide("POST", "/key/sk-abc/regenerate", iu),
            Decision::AllowScoped
        );
        for p in [
            "/key/block",
            "/team/update",
            "/team/member_add",
            "/invitation/new",
        ] {
            assert_eq!(decide("POST", p, iu), Decision::HandlerDecides, "{p}");
        }
        assert_eq!(grant("GET", "/user/list", iu), D403);
        assert_eq!(grant("GET", "/global/spend", iu), D401);
    }

    #[test]
    fn unknown_routes_fail_closed() {
        for (m, p) in [
            ("GET", "/config/yaml"),
            ("POST", "/config/update"),
            ("GET", "/user/info/"),
            ("GET", "/user//info"),
            ("DELETE", "/user/info"),
            ("OPTIONS", "/user/info"),
            ("get", "/user/info"),
            ("POST", "/key/x/y/regenerate"),
            ("POST", "/key//regenerate"),
        ] {
            assert_eq!(decide(m, p, Role::ProxyAdmin), Decision::Allow, "{m} {p}");
            assert!(matches!(
                decide(m, p, Role::ProxyAdminViewer),
                Decision::Deny { status: 403, .. }
            ));
            for role in [Role::InternalUser, Role::InternalUserViewer] {
                assert!(
                    matches!(decide(m, p, role), Decision::Deny { status: 401, .. }),
                    "{m} {p} {role}"
                );
            }
        }
    }

    #[test]
    fn head_reads_like_get_and_queries_are_ignored() {
        assert_eq!(
            decide("HEAD", "/key/list", Role::InternalUserViewer),
            Decision::AllowScoped
        );
        assert_eq!(
            decide("GET", "/user/info?user_id=someone-else", Role::InternalUser),
            Decision::AllowScoped
        );
        assert_eq!(
            decide("GET", "/spend/logs/ui/req-1?x=1", Role::InternalUser),
            Decision::AllowScoped
        );
        // A query cannot smuggle an allowed path in.
        assert!(matches!(
            decide("POST", "/user/new?/user/info", Role::InternalUser),
            Decision::Deny { status: 401, .. }
        ));
    }

    #[test]
    fn exact_paths_win_over_patterns() {
        assert_eq!(
            rule_for("POST", "/key/regenerate").map(|r| r.path),
            Some("/key/regenerate")
        );
        assert_eq!(
            rule_for("POST", "/key/abc/regenerate").map(|r| r.path),
            Some("/key/{key}/regenerate")
        );
        assert_eq!(
            rule_for("GET", "/spend/logs/ui").map(|r| r.path),
            Some("/spend/logs/ui")
        );
    }

    #[test]
    fn denial_messages_match_litellm() {
        assert_eq!(
            decide_for_user(
                "POST",
                "/user/new",
                Role::InternalUser,
                Some("0123456789abcdef")
            ),
            Decision::Deny {
                status: 401,
                message: "Authentication Error, Only proxy admin can be used to generate, delete, \
                          update info for new keys/users/teams. Route=/user/new. Your \
                          role=internal_user. Your user_id=012345********ef"
                    .to_string(),
            }
        );
        assert!(matches!(
            decide("POST", "/user/new", Role::InternalUser),
            Decision::Deny { message, .. } if message.ends_with("Your user_id=unknown")
        ));
        assert_eq!(
            decide("POST", "/key/generate", Role::ProxyAdminViewer),
            Decision::Deny {
                status: 403,
                message: "user not allowed to access this route, role= proxy_admin_viewer. \
                          Trying to access: /key/generate"
                    .to_string(),
            }
        );
        assert_eq!(
            decide("GET", "/invitation/info", Role::InternalUser),
            Decision::Deny {
                status: 400,
                message: "Admin-only endpoint. Not allowed to access this., your \
                          role=internal_user"
                    .to_string(),
            }
        );
    }

    #[test]
    fn user_ids_are_masked() {
        assert_eq!(mask_user_id("abcdefghij"), "abcdef**ij");
        assert_eq!(mask_user_id("short"), "*****");
        assert_eq!(mask_user_id(""), "");
        assert_eq!(mask_user_id("ünïcödé-user"), "ünïcöd****er");
    }
}
