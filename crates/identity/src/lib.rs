//! Identity: people and their credentials. Password rules and hashing, the secret tokens handed
//! out to people (invitation links, session ids) and the throttle in front of login. Who may do
//! what is decided by the route policy in `tollgate_domain::policy`.

pub mod password;
pub mod throttle;
pub mod tokens;
