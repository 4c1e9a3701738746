//! Family A of the catalogue (see `super`).

use super::{Built, Control, Evidence};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "A1",
        title: "Password storage",
        built: Built::Done(None),
        promise: "Passwords are stored only as slow, salted Argon2id hashes and checked against a list of commonly breached passwords.",
        self_check: "Fails when the Argon2id parameters for new hashes are below OWASP's floor (19 MiB, t=2, p=1). Counts the stored hashes below the configured parameters (or not made with the configured pepper, or naming a pepper when none is configured) among the oldest 100,000 accounts, classifying at most 10,000 that differ from them (beyond that the count is a lower bound); bcrypt imports and unreadable hashes count as below, and any below warns.",
        ledger: r#"Passwords are stored as Argon2id PHC strings at or above OWASP's floor, rehashed when the
configured cost rises, optionally peppered, checked against length rules and a breached-password
list, never logged, and hashed on a bounded pool off the async runtime. Imported bcrypt hashes are
accepted at cost 10 to 14 (below 10 only with `allow_weak_hashes`) and replaced by Argon2id at
first sign-in; a stored hash over the cost ceiling is never verified, a check made before the
verification is queued on the hashing pool.

Issue 26 (ASVS 5.0 6.1.2, 6.2.11, 6.2.12): a new account password is also refused when it is built
from the account's context words (email local part and domain labels, name, organisation names,
`mail.product_name`: what is left once they are taken out must hold 8 letters or digits and not
be a common password), and, when `[passwords] breach_range_url` is set, when a breached-password
range service lists it, asked by k-anonymity (5 hex characters of the SHA-1 leave the process;
`breach_on_error` chooses allow or refuse when it does not answer)."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/passwords.rs",
                tests: &[
                    "a_bcrypt_imported_user_signs_in_and_is_stored_as_argon2id_afterwards",
                    "imported_hash_costs_are_bounded_and_a_too_costly_stored_hash_is_never_verified",
                    "a_configured_cost_over_the_import_ceiling_still_signs_in",
                    "raising_the_argon2_parameters_rehashes_at_the_next_sign_in",
                    "common_passwords_are_refused_with_a_reason",
                    "unknown_email_and_wrong_password_get_identical_answers_and_indistinguishable_timings",
                    "a_configured_pepper_is_mixed_into_new_hashes_and_needed_to_verify_them",
                ],
            },
            Evidence {
                file: "crates/gatehouse-crypto/src/password.rs",
                tests: &[
                    "hash_is_argon2id_phc_and_verifies",
                    "parameters_cannot_go_below_the_floor",
                    "a_pepper_is_needed_for_peppered_hashes_and_unpeppered_ones_still_verify",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/inputs.rs",
                tests: &[
                    "common_passwords_are_refused_with_a_reason",
                    "passwords_are_nfkc_normalised",
                    "passwords_by_characters_not_bytes",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/password_checks.rs",
                tests: &[
                    "passwords_built_from_the_accounts_context_words_are_refused",
                    "breached_passwords_are_refused_by_a_range_query_that_sends_only_a_prefix",
                    "a_range_service_that_does_not_answer_is_allowed_or_refused_as_configured",
                    "without_a_range_url_no_range_query_is_made",
                    "a_range_answer_of_the_wrong_shape_is_a_failure_not_a_pass",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/identity/passwords.rs",
                tests: &[
                    "context_words_come_from_email_names_and_product",
                    "passwords_built_from_context_words_are_refused",
                    "range_bodies_are_read_as_suffix_and_count",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/password_pool.rs",
                tests: &[
                    "a_full_queue_is_refused_at_once_and_work_resumes_after",
                    "hashes_and_verifies_off_the_runtime",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/signup.rs",
                tests: &["a_saturated_hashing_pool_answers_503_with_retry_after"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/errors.rs",
                tests: &["validation_failures_are_422_and_never_echo_the_password"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/secrets_in_logs.rs",
                tests: &["no_log_line_contains_a_planted_secret"],
            },
        ],
    },
    Control {
        id: "A2",
        title: "Local master-password vault",
        built: Built::Done(None),
        promise: "The command-line vault keeps credentials in one file encrypted under a key derived from your master password, and refuses a wrong password or a tampered file.",
        self_check: "Not applicable to the server: the vault is a library and CLI that run on the user's machine.",
        ledger: r#"A library (`gatehouse-vault`) and `gatehouse local-vault` keep credentials in one file encrypted
under an Argon2id-derived key; the format is versioned and authenticated, and a wrong password is
a clear error."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse-vault/src/tests.rs",
                tests: &[
                    "round_trip",
                    "wrong_password_and_tampering_are_refused_without_change",
                    "a_crash_between_write_and_rename_keeps_the_previous_file",
                    "change_password",
                    "default_kdf_is_at_least_64_mib",
                    "absurd_kdf_parameters_are_refused_before_deriving",
                    "debug_shows_no_values",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/process.rs",
                tests: &["local_vault_commands"],
            },
        ],
    },
    Control {
        id: "A3",
        title: "Organisation-scoped bearer tokens",
        built: Built::Done(None),
        promise: "Every access token names the organisation it was issued for, and using it for another organisation is refused and recorded.",
        self_check: "Reads the token-signing keys the JWKS document publishes; no published key fails.",
        ledger: r#"Access tokens are EdDSA JWTs naming subject, organisation, roles, session and audience, published
at a JWKS endpoint with overlapping key rotation; an organisation route needs `x-organization-id`
equal to the token's, and a mismatch is a 403 recorded in the audit log. A token for a registered
app (`resource` on refresh) carries that app's audience, which `/v1` and other apps' services
refuse."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/tokens.rs",
                tests: &[
                    "pyjwt_verifies_our_tokens_from_the_jwks_document_across_a_key_rotation",
                    "org_routes_need_the_tokens_organisation_and_a_mismatch_is_refused_and_audited",
                    "switching_organisation_issues_a_token_for_a_membership_only",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/apps.rs",
                tests: &[
                    "a_token_for_one_app_is_refused_by_v1_and_by_another_apps_service",
                    "refresh_with_resource_rotates_the_refresh_token_and_an_unknown_one_is_invalid_target",
                    "operators_register_list_and_remove_apps_and_each_change_is_audited",
                ],
            },
            Evidence {
                file: "crates/gatehouse-crypto/src/jwt.rs",
                tests: &[
                    "signs_and_verifies_by_kid_with_the_injected_clock",
                    "a_token_signed_by_another_key_under_the_same_kid_is_refused",
                    "any_audience_verification_still_checks_issuer_signature_and_presence_of_aud",
                ],
            },
        ],
    },
    Control {
        id: "A4",
        title: "TOTP second factor",
        built: Built::Done(None),
        promise: "You can protect your account with codes from an authenticator app; each code works once, and ten single-use recovery codes stand in if you lose the device.",
        self_check: "Computes RFC 6238's published test vector with the TOTP generator in use.",
        ledger: r#"RFC 6238 codes that common authenticator apps accept, enrolment with an otpauth URI and a QR code,
activation only after a confirmed code, replay refused, ten single-use recovery codes stored
hashed, and removal only with a fresh code.

Issue 26: the platform (`identity.require_second_factor`) or an organisation's owner (with a fresh
second factor, audited) can require a second factor; a person without one may then only enrol it
(`second_factor_enrolment_required`), decided at each request, and the token and verify show the
requirement. Recovery codes carry 120 random bits and are stored salted; regenerating them and
changing the password of an account with a factor need a fresh second factor. The requirement
holds wherever the person's credential is taken (the service API's checks and on-behalf-of calls,
tokens for registered apps) and for the API keys acting for them."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/mfa.rs",
                tests: &[
                    "enrol_confirm_sign_in_with_code_then_recovery_code_once_then_disable_with_a_fresh_code",
                    "codes_from_pyotp_sign_in_and_replayed_wrong_and_stale_codes_are_refused",
                    "wrong_codes_lock_the_account_out_with_growing_delays",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/factor_policy.rs",
                tests: &[
                    "an_organisation_requiring_a_second_factor_admits_a_member_without_one_only_to_enrol",
                    "a_platform_requirement_admits_anyone_without_a_second_factor_only_to_enrol",
                    "changes_to_authentication_need_a_fresh_second_factor",
                    "a_key_made_by_a_member_without_a_second_factor_is_suspended_while_one_is_required",
                    "turning_the_requirement_off_reads_whether_the_owner_has_a_factor_from_the_store",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/identity/recovery_codes.rs",
                tests: &[
                    "a_recovery_code_carries_at_least_112_bits",
                    "equal_codes_store_differently_and_each_stored_value_matches_its_own_code",
                    "codes_stored_before_salting_are_still_recognised",
                    "only_a_typed_code_of_either_format_is_looked_at",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/identity/factor_policy.rs",
                tests: &[
                    "the_policy_cache_ages_out_forgets_and_stays_bounded",
                    "whether_a_person_has_a_factor_is_kept_thirty_seconds_at_most_and_forgotten_on_change",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/org_keys.rs",
                tests: &["identity_second_factor_policy_is_per_organisation_and_reports_changes"],
            },
            Evidence {
                file: "crates/gatehouse-crypto/src/otp.rs",
                tests: &[
                    "rfc6238_appendix_b_vectors",
                    "rfc4226_appendix_d_vectors",
                    "one_step_of_skew_either_way_and_never_a_used_step",
                    "uri_carries_the_base32_secret_and_escapes_labels",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/second_factor.rs",
                tests: &[
                    "second_factor_pending_totp_is_replaced_until_confirmed",
                    "second_factor_totp_steps_are_never_replayed",
                    "second_factor_delete_removes_factor_and_recovery_codes",
                    "second_factor_recovery_codes_are_single_use_and_personal",
                    "second_factor_unused_recovery_codes_are_listed_per_user",
                ],
            },
        ],
    },
    Control {
        id: "A5",
        title: "Per-device sessions, instant revocation",
        built: Built::Done(None),
        promise: "You can see every device signed in to your account and sign any of them out, and a signed-out device loses access on its next request.",
        self_check: "Reports where revocations go (this instance, or Redis to every instance) and warns while the Redis subscription is down; fails if the ID-token verifier of sign-in through a provider accepts an unsigned or HS256-swapped token.",
        ledger: r#"Each sign-in is a session with its device record; a user lists their sessions and ends any one of
them; a revoked session's tokens fail on the next request, on every instance; refresh tokens
rotate, and presenting a spent one ends the session.

Issue 18: a removed member's sessions in the organisation end with the removal, and refresh refuses
a session whose membership is gone; the strict sign-in lock keys on account and address with a
looser account-wide bound.

Issue 26: ending all other sessions, or any one session but the caller's own, needs a second
factor checked within the step-up window (an account without one: a recent password).

Issue 26 (ASVS 7.3.1, 7.4.2): an optional cap on an account's concurrent sessions ends the oldest or
refuses the sign-in (`session_limit_reached`); an organisation admin ends a member's sessions in that
organisation, audited on its chain; a disabled account's tokens and keys are refused on every
instance.

Issue 24: a sign-in through an organisation's OpenID provider (single sign-on) or a platform
provider opens the same session as a password (one shared tail: second factor, session cap,
`user.login`), after a state spent once, PKCE and an ID token verified with the provider's keys
(algorithm from the key's type, never `none` or HMAC; `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`).
Accounts are linked or made, and members added just in time, only through an address the provider
marks verified in an email domain the organisation proved by DNS. An organisation may enforce
single sign-on: password sign-in, switching and refreshing into it are refused (`sso_required`),
but for an owner with a second factor (break-glass)."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/sessions.rs",
                tests: &[
                    "login_issues_tokens_that_verify_and_identify_the_caller",
                    "revoking_device_b_refuses_its_token_at_once_while_device_a_keeps_working",
                    "refresh_rotates_and_reusing_a_spent_refresh_token_revokes_the_session",
                    "a_guessed_refresh_secret_is_refused_without_ending_the_session",
                    "logout_and_revoke_others_end_sessions",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/factor_policy.rs",
                tests: &[
                    "changes_to_authentication_need_a_fresh_second_factor",
                    "without_a_second_factor_ending_other_sessions_needs_a_recent_password",
                    "a_platform_requirement_admits_anyone_without_a_second_factor_only_to_enrol",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/redis_shared.rs",
                tests: &["a_session_revoked_on_one_instance_is_refused_by_the_other_at_once"],
            },
            Evidence {
                file: "crates/gatehouse-core/src/identity/cache.rs",
                tests: &["revocation_overrides_and_capacity_bounds"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/sessions.rs",
                tests: &[
                    "identity_sessions_rotate_once_and_revoke",
                    "identity_revoked_sessions_are_refused_on_the_next_request",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/membership.rs",
                tests: &[
                    "a_demotion_reaches_verify_at_once_and_a_removal_ends_the_sessions",
                    "refresh_checks_the_membership_and_ends_a_session_without_one",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/limits.rs",
                tests: &["wrong_passwords_lock_the_guessers_address_out_not_the_owner"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/session_policy.rs",
                tests: &[
                    "over_the_session_cap_the_oldest_session_ends",
                    "over_the_session_cap_a_sign_in_is_refused_when_so_configured",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/account_control.rs",
                tests: &[
                    "an_admin_ends_a_members_sessions_in_the_organisation_only",
                    "only_an_owner_ends_an_owners_sessions",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/sessions.rs",
                tests: &["identity_a_members_sessions_in_one_organisation_end_at_once"],
            },
            Evidence {
                file: "crates/gatehouse/tests/redis_shared.rs",
                tests: &["an_account_disabled_on_one_instance_is_refused_by_the_other_at_once"],
            },
            Evidence {
                file: "crates/gatehouse/tests/three_instances.rs",
                tests: &["an_account_disabled_through_one_instance_is_refused_by_all_three"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/sso_signin.rs",
                tests: &[
                    "a_user_of_a_verified_domain_signs_in_through_the_provider_and_joins_with_the_default_role",
                    "account_linking_never_merges_through_an_unverified_address_or_an_unproven_domain",
                    "id_tokens_for_another_client_issuer_or_sign_in_expired_or_forged_are_refused",
                    "replayed_failed_and_misdirected_callbacks_are_refused_and_store_nothing",
                    "a_browser_sign_in_sets_cookies_only_in_the_browser_that_started_it",
                    "a_platform_provider_signs_new_people_in_without_membership_and_takes_over_no_account",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/sso_tokens.rs",
                tests: &[
                    "id_tokens_oidc_provider_issued_for_another_client_issuer_or_sign_in_expired_or_alg_swapped_are_refused",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/sso_domains.rs",
                tests: &[
                    "a_domain_is_verified_only_by_its_published_record_and_by_one_organisation_at_most",
                    "the_configuration_is_for_admins_stepped_up_audited_and_its_secret_never_shown",
                    "enforcement_refuses_password_sign_in_switching_and_refreshing_into_the_organisation",
                    "an_owner_with_a_second_factor_may_still_use_a_password_and_no_one_else",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/sso/id_token_tests.rs",
                tests: &[
                    "alg_none_is_refused_before_any_key_is_looked_at",
                    "an_alg_swap_to_hs256_signed_with_the_public_key_is_refused",
                    "issuer_audience_and_authorized_party_are_compared_exactly",
                    "expiry_and_issue_time_are_judged_by_the_callers_clock_with_the_leeway",
                    "the_nonce_must_be_the_one_stored_with_the_state",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/sso.rs",
                tests: &[
                    "sso_a_domain_is_verified_by_one_organisation_and_found_only_once_verified",
                    "sso_external_identities_are_unique_and_listed_per_person",
                ],
            },
        ],
    },
    Control {
        id: "A6",
        title: "Tiered session lifetimes",
        built: Built::Done(None),
        promise: "By default, sessions end on their own: customer sessions after 7 days, operator (staff) sessions after 12 hours, and an operator acting as you after 30 minutes without renewal.",
        self_check: "Compares each configured session tier with the catalogue's (customers 7 days, operators 12 hours, impersonation 30 minutes) and the access-token lifetime with one hour; longer warns.",
        ledger: r#"Customer sessions last 7 days, operator sessions 12 hours, impersonation 30 minutes with one
token that is never renewed and carries the operator; access tokens last 15 minutes by default and
at most an hour.

Issue 26 (ASVS 7.1.1, 7.1.2, 7.3.1): a customer or operator session with no request for 30 minutes
(NIST SP 800-63B rev. 3's AAL2 inactivity limit; `identity.idle_timeout_secs`) is not refreshed
again: refused once the limit has passed, never later (activity another instance has not yet
written may make it up to 30 s earlier); the lifetimes' reasons are in docs/SECURITY.md."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/sessions.rs",
                tests: &["access_tokens_expire_by_the_injected_clock_and_sessions_by_their_tier"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/operators.rs",
                tests: &[
                    "impersonation_is_thirty_minutes_unrenewable_and_audited_with_both_identities",
                ],
            },
            Evidence {
                file: "crates/gatehouse/src/config/tests.rs",
                tests: &[
                    "identity_lifetimes_are_bounded",
                    "session_policy_is_validated_at_load",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/session_policy.rs",
                tests: &["a_refresh_after_the_idle_limit_is_refused_and_one_within_it_succeeds"],
            },
        ],
    },
    Control {
        id: "A7",
        title: "Password reset",
        built: Built::Done(None),
        promise: "A password-reset link works once, expires soon and signs out every session, and asking for one does not reveal whether an account exists.",
        self_check: "Reports the reset token's lifetime and warns when mail is written to files instead of sent.",
        ledger: r#"A reset link carries a one-time token stored as a hash, short-lived and single use; success revokes
every session; the request answers the same whether or not the account exists."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/recovery.rs",
                tests: &[
                    "reset_and_verification_complete_over_smtp_tokens_work_once_and_a_reset_ends_every_session",
                    "reset_and_verification_tokens_expire",
                    "the_reset_request_answers_identically_for_known_and_unknown_addresses",
                    "changing_the_password_needs_the_current_one_and_ends_the_other_sessions",
                    "a_password_change_spends_every_reset_link_mailed_before_it",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/one_time_tokens.rs",
                tests: &["second_factor_one_time_tokens_are_spent_once"],
            },
        ],
    },
    Control {
        id: "A8",
        title: "Email verification",
        built: Built::Done(None),
        promise: "Email-verification links work once and expire, and an account whose address is not verified can be limited to reading.",
        self_check: "Reports the verification token's lifetime and warns when mail is written to files instead of sent.",
        ledger: r#"Verification links use the same one-time token discipline; an unverified account can be limited
to reading."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/recovery.rs",
                tests: &[
                    "reset_and_verification_complete_over_smtp_tokens_work_once_and_a_reset_ends_every_session",
                    "reset_and_verification_tokens_expire",
                    "an_unverified_account_may_only_read_when_so_configured",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/users.rs",
                tests: &["second_factor_email_is_verified_once"],
            },
        ],
    },
    Control {
        id: "A9",
        title: "Administrator segregation",
        built: Built::Done(None),
        promise: "The service's operators use separate accounts on a separate interface, sign in with a second factor (required by default in production), and have their own audit log.",
        self_check: "Reports where operator routes listen and warns in production when operators need no second factor.",
        ledger: r#"Operators have their own accounts, path prefix (`/admin/v1`), optional listener, token audience
and tier, and their own audit chain. They sign in with a TOTP factor (required by default in
production), step up before impersonating, sign out and end their sessions over the API and the
CLI, and their refresh tokens work on the operators' surface only.

Issue 26 (ASVS 7.4.2, 7.4.5): an operator ends all of a user's sessions, and, after a step-up,
disables or re-enables the account (no sign-in, refresh or API-key use while disabled, on every
instance), each audited on the operators' chain."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/operators.rs",
                tests: &[
                    "tenant_and_operator_tokens_each_work_only_on_their_own_api",
                    "the_operator_api_can_move_to_its_own_listener",
                    "a_tenant_token_cannot_impersonate",
                    "an_impersonation_makes_no_credential_that_would_outlive_it",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/limits.rs",
                tests: &["operator_sign_in_locks_out_like_customer_sign_in"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/openapi.rs",
                tests: &[
                    "each_document_describes_its_own_surface_only",
                    "each_document_is_served_on_its_surface_behind_its_credential",
                    "with_an_operators_listener_their_document_is_only_there",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/operators.rs",
                tests: &[
                    "identity_operator_emails_are_unique",
                    "identity_an_operators_totp_step_is_spent_once",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/operator_sessions.rs",
                tests: &[
                    "an_operator_refresh_token_works_only_on_the_operators_surface",
                    "an_operator_with_a_factor_signs_in_only_with_its_current_code",
                    "where_a_factor_is_required_an_operator_without_one_cannot_sign_in_or_refresh",
                    "impersonation_needs_a_recent_step_up",
                    "operators_list_revoke_and_sign_out_their_sessions",
                    "the_cli_enrols_a_factor_lists_and_revokes_an_operators_sessions",
                    "ending_an_operators_sessions_ends_the_impersonations_they_started",
                    "a_code_spent_on_a_step_up_does_not_sign_in_and_device_names_are_cleaned",
                    "wrong_codes_lock_the_factor_and_wrong_passwords_do_not",
                    "a_right_password_costs_the_address_what_a_wrong_one_does",
                ],
            },
            Evidence {
                file: "crates/gatehouse/src/config/tests.rs",
                tests: &["operators_need_a_second_factor_by_default_in_production_only"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/account_control.rs",
                tests: &[
                    "a_disabled_account_is_refused_everything_until_it_is_enabled_again",
                    "an_operator_ends_all_of_a_users_sessions_and_needs_a_step_up_to_disable",
                    "a_disabled_account_with_sessions_left_is_refused_at_refresh_and_second_step",
                    "a_service_check_naming_a_disabled_account_is_refused",
                    "a_disabled_account_neither_accepts_an_invitation_nor_has_its_own_accepted",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/users.rs",
                tests: &["identity_an_account_is_disabled_and_enabled_once"],
            },
        ],
    },
    Control {
        id: "A10",
        title: "Browser sessions",
        built: Built::Done(None),
        promise: "Browser sessions can use cookies that page scripts cannot read, and a change made with one needs a token that another website cannot supply.",
        self_check: "Reports the cookie and CSRF settings in force.",
        ledger: r#"Sign-in can set `__Host-` cookies (HttpOnly, Secure, SameSite) instead of returning tokens, and a
cookie-authenticated request that changes state needs the CSRF header bound to the token."#,
        evidence: &[Evidence {
            file: "crates/gatehouse/tests/it/sessions.rs",
            tests: &["cookie_sessions_need_the_csrf_token_for_state_changes"],
        }],
    },
];
