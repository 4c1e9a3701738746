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
        built: Built::Done(Some(
            "The presets for common providers (docs/API.md) are configuration examples, untested here.",
        )),
        promise: "People connect their accounts at other services through OAuth with PKCE and a signed, single-use state; the tokens are kept encrypted, refreshed before they expire, handed only to the deployment's own services, and revoked at the provider on disconnect.",
        self_check: "Signs and verifies a state-like value with the current link key, and counts (up to 100) active connectors whose refresh is more than ten minutes overdue.",
        ledger: r#"The authorization-code flow with PKCE (S256; the verifier sealed in the state's row, sent only to
the token endpoint) and a `state` that is a link-key HMAC over the key version, purpose, mode
(cookie session or bearer token), issue time, a random nonce, the provider's stable key and the
organisation and person (sealed, so the URL does not name them). Each provider has its own
callback; it needs the credential of the person who started, the way they started, and the state
is refused when ten minutes old or more (injected clock), signed by a key past its overlap or
another deployment's, already spent (one conditional update of its `oauth_states` row), issued
for another provider than the callback's, started in the other mode, or by someone else or in
another organisation, each before the code reaches the provider; the RFC 9207 `iss` must be the
provider's exactly, and is required where the provider advertises it. Access and refresh tokens are sealed with the organisation's data key (D1)
in the transaction that records the connector; a leased job refreshes them ahead of expiry with
backoff on provider errors, and marks a connector whose refresh token is refused `needs_reauth`,
erasing its tokens and raising the webhook event `connector.needs_reauth`; one whose owner left
the organisation or is disabled is suspended the same way without calling the provider. Services
get an access token through `/internal/v1` on the owner's behalf (service secret plus the
person's token, the owner's own connector, `connectors.use`), from a cache holding it sealed and
opened per call; a pairing's (connector, person, service) first hand-out since the last flush
commits `connector.token_used` before it answers, and the rest are counted and written at the
30 s flush;
`/v1` never shows a token. Disconnecting revokes at the provider (RFC 7009) and erases the tokens.
Provider calls go through the webhooks' SSRF guard (every resolved address checked, no
redirects, bounded answers and time). Providers are the platform's (configuration) or an
organisation's (`connectors.manage`, client secret sealed). Every change is audited."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/connectors.rs",
                tests: &[
                    "a_connector_is_connected_used_refreshed_ahead_of_expiry_and_revoked_at_disconnect",
                    "while_connected_the_tokens_are_only_sealed_in_the_database",
                    "a_demoted_members_next_hand_out_is_refused_though_their_role_was_cached",
                    "hand_outs_after_a_pairings_first_are_counted_and_written_at_the_flush",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/connector_states.rs",
                tests: &[
                    "a_state_replayed_expired_forged_or_misdirected_is_refused_before_its_code_is_exchanged",
                    "provider_errors_and_garbage_are_refused_cleanly_and_nothing_is_stored",
                    "a_refused_refresh_token_marks_the_connector_and_raises_the_webhook_event_and_errors_back_off",
                    "a_callback_needs_the_credential_of_the_person_who_started_in_the_mode_they_started",
                    "a_state_at_another_providers_callback_or_without_its_exact_iss_is_refused_unexchanged",
                    "a_removed_members_connectors_are_removed_at_once_and_revoked_at_the_provider",
                    "an_organisations_provider_is_not_deleted_while_a_connector_uses_it",
                    "a_pass_refreshes_several_connectors_at_once",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/connector_removal.rs",
                tests: &[
                    "a_removed_members_connector_without_a_refresh_token_is_deleted_and_revoked",
                    "an_erased_members_connector_without_a_refresh_token_is_deleted_and_revoked",
                    "a_provider_deleted_during_the_code_exchange_gets_no_connector_and_its_tokens_revoked",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/oauth.rs",
                tests: &[
                    "the_client_completes_an_authorization_refreshes_and_revokes_at_a_real_provider",
                    "a_provider_on_loopback_is_refused_without_the_development_setting",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/oauth_states.rs",
                tests: &[
                    "oauth_states_are_spent_once_by_digest_and_never_expired",
                    "oauth_states_are_signed_bound_short_lived_and_single_use",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/oauth/wire.rs",
                tests: &[
                    "token_responses_are_read_and_their_errors_typed",
                    "discovery_must_name_the_issuer_asked_and_allowed_endpoints",
                ],
            },
            Evidence {
                file: "crates/gatehouse-infra/src/oauth_client.rs",
                tests: &["redirects_garbage_and_private_addresses_are_refused"],
            },
        ],
    },
];
