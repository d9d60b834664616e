//! OpenID Connect sign-in state on every backend: a pending sign-in is taken once and not after
//! it expired, provider accounts link to one user each, and a session's ID token goes with it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use tollgate_store::sessions::{NewSession, SessionKind};
use tollgate_store::{NewUser, PendingLogin, SsoIdentity, StoreError};

mod common;

use common::backends;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, minute, 0).unwrap()
}

fn pending(id: &str, now: DateTime<Utc>) -> PendingLogin {
    PendingLogin {
        id_hash: format!("hash-of-{id}"),
        state: format!("state-{id}"),
        nonce: format!("nonce-{id}"),
        pkce_verifier: format!("verifier-{id}"),
        redirect_uri: "https://llm.example.com/sso/callback".into(),
        created_at: now,
        expires_at: now + Duration::minutes(10),
    }
}

#[tokio::test]
async fn a_pending_sign_in_is_taken_once_and_never_after_it_expired() {
    for db in backends().await {
        let s = &db.store;
        let a = pending("a", at(0));
        s.create_sso_pending_login(&a).await.unwrap();
        assert!(matches!(
            s.create_sso_pending_login(&a).await,
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(
            s.take_sso_pending_login(&a.id_hash, at(1)).await.unwrap(),
            Some(a.clone())
        );
        // Used once: a replay finds nothing.
        assert_eq!(
            s.take_sso_pending_login(&a.id_hash, at(1)).await.unwrap(),
            None
        );

        // Expired: refused, and gone all the same.
        let b = pending("b", at(0));
        s.create_sso_pending_login(&b).await.unwrap();
        assert_eq!(
            s.take_sso_pending_login(&b.id_hash, at(10)).await.unwrap(),
            None
        );
        assert_eq!(
            s.take_sso_pending_login(&b.id_hash, at(0)).await.unwrap(),
            None
        );

        // The sweep removes expired ones only.
        s.create_sso_pending_login(&pending("c", at(0)))
            .await
            .unwrap();
        s.create_sso_pending_login(&pending("d", at(5)))
            .await
            .unwrap();
        assert_eq!(
            s.delete_expired_sso_pending_logins(at(12)).await.unwrap(),
            1
        );
        assert!(s
            .take_sso_pending_login("hash-of-d", at(12))
            .await
            .unwrap()
            .is_some());
        db.drop_db().await;
    }
}

#[tokio::test]
async fn provider_accounts_link_to_one_user_and_session_tokens_go_with_the_session() {
    for db in backends().await {
        let s = &db.store;
        s.create_user(&NewUser::new("u1", "internal_user"))
            .await
            .unwrap();
        let link = SsoIdentity {
            issuer: "https://idp.example.com".into(),
            subject: "sub-1".into(),
            user_id: "u1".into(),
            email: Some("ann@example.com".into()),
            linked_at: at(0),
        };
        assert_eq!(
            s.get_sso_identity(&link.issuer, &link.subject)
                .await
                .unwrap(),
            None
        );
        s.link_sso_identity(&link).await.unwrap();
        assert_eq!(
            s.get_sso_identity(&link.issuer, &link.subject)
                .await
                .unwrap(),
            Some(link.clone())
        );
        // The account a user is linked to at an issuer (none at another).
        assert_eq!(
            s.sso_identity_of_user("u1", &link.issuer).await.unwrap(),
            Some(link.clone())
        );
        assert_eq!(
            s.sso_identity_of_user("u1", "https://other.example")
                .await
                .unwrap(),
            None
        );
        // The same account again, even for another user: refused.
        s.create_user(&NewUser::new("u2", "internal_user"))
            .await
            .unwrap();
        let again = SsoIdentity {
            user_id: "u2".into(),
            ..link.clone()
        };
        assert!(matches!(
            s.link_sso_identity(&again).await,
            Err(StoreError::Conflict { .. })
        ));
        let ghost = SsoIdentity {
            subject: "sub-2".into(),
            user_id: "nobody".into(),
            ..link.clone()
        };
        assert!(matches!(
            s.link_sso_identity(&ghost).await,
            Err(StoreError::NotFound { .. })
        ));

        let now = Utc::now();
        s.create_session(&NewSession {
            id_hash: "sess-1".into(),
            user_id: "u1".into(),
            kind: SessionKind::Ui,
            csrf_hash: None,
            created_at: now,
            idle_expires_at: now + Duration::hours(1),
            absolute_expires_at: now + Duration::hours(2),
            user_agent: None,
        })
        .await
        .unwrap();
        s.set_session_id_token("sess-1", "eyJ.id.token")
            .await
            .unwrap();
        assert_eq!(
            s.get_session_id_token("sess-1").await.unwrap().as_deref(),
            Some("eyJ.id.token")
        );
        s.delete_session("sess-1").await.unwrap();
        assert_eq!(s.get_session_id_token("sess-1").await.unwrap(), None);

        // Deleting the user unlinks its accounts.
        s.delete_users(&["u1".to_string()]).await.unwrap();
        assert_eq!(
            s.get_sso_identity(&link.issuer, &link.subject)
                .await
                .unwrap(),
            None
        );
        db.drop_db().await;
    }
}
