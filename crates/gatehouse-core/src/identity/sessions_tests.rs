//! Refresh tokens' format.

use super::*;

#[test]
fn refresh_tokens_round_trip_and_malformed_ones_are_refused() {
    let id = Uuid::from_u128(42);
    let (token, hash) = refresh_token(id).unwrap();
    let (parsed, secret) = parse_refresh(token.expose()).unwrap();
    assert_eq!(parsed, id);
    assert_eq!(digest(secret), hash);
    for bad in [
        "",
        "grt_",
        "grt_abc_def",
        "xyz_00000000000000000000000000000042_s",
    ] {
        assert!(parse_refresh(bad).is_none(), "{bad}");
    }
}
