//! Family B of the catalogue (see `super`).

use super::{Built, Control, Evidence};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "B1",
        title: "API keys",
        built: Built::Done(None),
        promise: "API keys are shown once, stored only as a hash, limited to the organisation and permissions they were given, and can be rotated or revoked at once.",
        self_check: "Generates a key and checks that its checksum verifies and that an altered copy is refused before any lookup.",
        ledger: r#"Keys have a recognisable prefix, a random body and a checksum; only their SHA-256 is stored and
the key is shown once; each is scoped to an organisation (optionally a namespace) with
permissions, optional expiry and its own rate limit; last use is recorded; rotation keeps the old
key for a grace period; revocation is immediate.

Issue 18: a key acts with at most its creator's current permissions, a key-made key expires with its
maker, and a key's own rate never exceeds its plan. The store case
`identity_api_keys_are_found_by_digest_and_scoped` includes the last-used time."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/api_keys.rs",
                tests: &[
                    "create_use_rotate_with_grace_and_revoke",
                    "mistyped_and_expired_keys_are_refused",
                    "a_mistyped_key_is_refused_by_its_checksum_without_a_store_lookup",
                    "rotating_a_key_needs_every_permission_it_carries",
                    "a_key_acts_with_at_most_its_creators_current_permissions",
                    "a_key_made_by_a_key_expires_with_it_at_the_latest",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/api_keys/format.rs",
                tests: &[
                    "generated_keys_parse_and_match_the_documented_pattern",
                    "known_checksum",
                    "any_single_character_change_is_caught",
                    "arbitrary_input_never_panics",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/limits.rs",
                tests: &["an_api_keys_own_limit_overrides_its_plan"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/api_keys.rs",
                tests: &["identity_api_keys_are_found_by_digest_and_scoped"],
            },
        ],
    },
    Control {
        id: "B2",
        title: "Internal service authentication",
        built: Built::Done(None),
        promise: "The internal service interface accepts only a configured service secret, and that secret opens nothing else.",
        self_check: "Reports the configured service secrets by name (never their values); none means `/internal/v1` is off.",
        ledger: r#"`/internal/v1` accepts only `X-Service-Auth` equal to one of up to two configured secrets,
compared in constant time; user tokens and API keys never pass there, and the service secret
passes nowhere else."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/api_keys.rs",
                tests: &["service_auth_accepts_only_the_configured_secrets_and_only_on_internal"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/apps.rs",
                tests: &["a_service_bound_to_no_app_acts_only_on_tokens_for_gatehouse"],
            },
            Evidence {
                file: "crates/gatehouse-crypto/src/ct.rs",
                tests: &["equal_and_unequal"],
            },
        ],
    },
    Control {
        id: "B3",
        title: "OAuth 2.0 connectors",
        built: Built::NotBuilt,
        promise: "Connecting third-party accounts through OAuth is not available yet.",
        self_check: "",
        ledger: r#"Nothing implements the authorization-code flow, PKCE, signed state or connector tokens. The
keyring reserves a sealed-field kind `connector_token` for them."#,
        evidence: &[],
    },
];
