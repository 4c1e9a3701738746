//! The providers' ID-token keys are cached (issue 24's review: they were fetched at every
//! sign-in): one fetch serves sign-ins for ten minutes (the injected clock); a rotation at the
//! provider (a new key id) is picked up; tokens with made-up key ids fetch nothing more than
//! once a minute. The JWKS requests are counted at the provider (`oidc_stub.rs`) as they arrive.

use crate::oidc_stub::{self, Forgery};
use crate::sso_signin::stub_sign_in;
use crate::support::expect_problem;

#[tokio::test]
async fn id_token_keys_are_fetched_once_refetched_on_rotation_and_not_hammered() {
    let (app, _dns, ada, stub) = oidc_stub::acme_on_stub().await;

    // Two sign-ins, one fetch of the keys.
    for _ in 0..2 {
        let res = stub_sign_in(&app, &stub, &ada.org).await;
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
    }
    assert_eq!(stub.jwks_requests(), 1);

    // ID tokens naming key ids nobody published, within the minute: refused with the keys in
    // hand, nothing fetched.
    stub.forge(Forgery::UnknownKid);
    for _ in 0..3 {
        expect_problem(
            stub_sign_in(&app, &stub, &ada.org).await,
            403,
            "sso_refused",
        )
        .await;
        app.clock.advance(time::Duration::seconds(5));
    }
    assert_eq!(stub.jwks_requests(), 1, "made-up key ids fetch nothing");

    // The provider rotates its key: the first token under the new key id fetches the keys
    // again (the last fetch being a minute old) and signs in.
    app.clock.advance(time::Duration::seconds(61));
    stub.forge(Forgery::None);
    stub.rotate("stub-2", 77);
    let res = stub_sign_in(&app, &stub, &ada.org).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(stub.jwks_requests(), 2);
    let res = stub_sign_in(&app, &stub, &ada.org).await;
    assert_eq!(res.status(), 200);
    assert_eq!(stub.jwks_requests(), 2);
    // A made-up key id right after: nothing fetched.
    stub.forge(Forgery::UnknownKid);
    expect_problem(
        stub_sign_in(&app, &stub, &ada.org).await,
        403,
        "sso_refused",
    )
    .await;
    assert_eq!(stub.jwks_requests(), 2);

    // Ten minutes on, the keys are fetched again.
    app.clock.advance(time::Duration::minutes(10));
    stub.forge(Forgery::None);
    let res = stub_sign_in(&app, &stub, &ada.org).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(stub.jwks_requests(), 3);
}
