//! Family C of the catalogue (see `super`).

use super::{Built, Control, Evidence};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "C1",
        title: "Roles and action-level gating",
        built: Built::Done(None),
        promise: "Every sensitive action checks that your role holds a named permission, and the most sensitive ones also need a recent second-factor check.",
        self_check: "Reports the built-in roles, the product's declared permissions and record types, and the step-up settings.",
        ledger: r#"Product permissions (issue 19): declared in `[[product.permissions]]` with the
built-in roles holding them and an optional step-up; held by custom roles (now editable and
deletable under the "nobody grants what they do not hold" rule) and API keys; answered by
`POST /v1/check`, `POST /v1/check/batch`, `POST /internal/v1/check` (a credential, a member by
id, or anonymous) and verify's `action`/`resource` parameters, counted in metrics, with denials
folded in the audit log. `grants.manage` (C4) joined the catalogue and the default step-up list.

Organisations have the built-in roles owner, admin, member and viewer plus custom roles as
permission sets; every sensitive action checks a named permission the viewer role lacks, and
permissions in `identity.step_up_permissions` also need a recent second factor.

`data.export` gates `POST /v1/exports` and `data.delete` gates `POST /v1/erasures` and
`DELETE /v1/organization` (both with step-up; `data.delete` is the owners' by default); the
product's own actions (report runs, shares) are gated by the permissions it declares, asked
through the check API.

Issue 18: forward authentication answers the roles held now; invitations are mailed, listed, revoked
and honoured only while the inviter may grant the role."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/product.rs",
                tests: &[
                    "built_in_roles_hold_the_product_permissions_declared_for_them",
                    "custom_roles_hold_product_permissions_and_are_edited_and_deleted_by_those_who_hold_them",
                    "an_api_key_holds_product_permissions_up_to_its_creators",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/checks.rs",
                tests: &[
                    "checks_about_records_follow_their_levels_owners_and_allowed_lists",
                    "a_batch_answers_each_question_in_order_and_is_bounded",
                    "repeated_denials_are_counted_and_folded_into_one_audit_summary",
                    "verify_gates_a_route_on_an_action_in_the_same_call",
                    "a_service_asks_about_a_token_a_key_a_member_by_id_or_nobody",
                ],
            },
            Evidence {
                file: "crates/gatehouse/src/config/tests.rs",
                tests: &["product_permissions_and_record_types_are_checked_at_load"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/roles.rs",
                tests: &[
                    "a_viewer_is_refused_every_sensitive_action_and_each_refusal_is_audited",
                    "a_custom_role_grants_exactly_its_permissions",
                    "nobody_grants_a_role_with_permissions_they_do_not_hold",
                    "the_last_owner_cannot_be_removed_or_demoted",
                    "invitations_work_once",
                    "nobody_changes_or_removes_a_member_holding_what_they_lack",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/identity/permissions.rs",
                tests: &[
                    "a_viewer_has_no_sensitive_permission",
                    "owners_hold_everything_and_admins_all_but_erasure",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/mfa.rs",
                tests: &[
                    "step_up_is_needed_for_sensitive_permissions_and_expires_with_the_window",
                    "without_a_factor_step_up_takes_the_password_and_api_keys_cannot_step_up",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/vault.rs",
                tests: &["reveal_needs_a_recent_second_factor_is_audited_and_refused_to_a_viewer"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/membership.rs",
                tests: &["a_demotion_reaches_verify_at_once_and_a_removal_ends_the_sessions"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/invitations.rs",
                tests: &[
                    "invitations_are_mailed_listed_and_revoked",
                    "an_invitation_dies_with_its_inviters_authority_and_accepting_verifies_the_address",
                ],
            },
        ],
    },
    Control {
        id: "C2",
        title: "Tenant isolation",
        built: Built::Partial(
            "the random operations through the API cover only records, grants and memberships, and the database-side RLS tests read only some of the tables under RLS",
        ),
        promise: "Each organisation's data is kept apart from every other's by the application and, on PostgreSQL, by the database itself.",
        self_check: "On PostgreSQL, reads the catalog: every table with an organisation column must have row-level security enabled, forced and a policy comparing rows with the transaction's organisation, and no permissive policy applying to the role that depends on neither the scope nor a declaration; no view or materialised view with an organisation column may read as its owner; and the connected role must not bypass any of it (superuser, BYPASSRLS, membership of such a role, or owning tables). On SQLite, warns that only the store's scoped queries isolate tenants.",
        ledger: r#"Every tenant row carries its organisation; store methods for tenant rows exist only on a
transaction inside a `TenantScope` (two named exceptions: a person's own memberships across
organisations, and API keys' last-used bookkeeping; see ARCHITECTURE.md); both backends refuse a
write for another organisation; on PostgreSQL forced row-level security enforces the same inside
the database.

`random_operations_stay_isolated` is a property test: random joins, rejoins and cross-writes over
three organisations, checked against a model.
`every_table_with_an_organisation_column_or_personal_data_is_under_forced_rls` reads every table
from the database's catalog.

Through the API (issue 19): `crates/gatehouse/tests/it/access_model.rs`:
`every_listing_and_check_agrees_with_the_model` runs random sequences over four organisations
(records created, re-levelled and deleted; roles changed and members removed; grants made,
revoked and left to expire; the clock moved) and after every step compares each person's listing,
a check about every record and one read with a reference model: no answer holds another
organisation's record unless a live grant allows it (on SQLite and, in CI, PostgreSQL).
`crates/gatehouse-store-postgres/tests/postgres/grants_rls.rs`:
`a_policy_shows_the_grantee_exactly_the_records_a_live_grant_covers`.

Not yet: the random operations through the API cover records, grants and memberships; other
paths (secrets, keys, transit, audit) are covered by their targeted tests above. The
database-side RLS tests read `memberships`, `secrets`, `secret_versions`, `transit_settings`,
`records` and `grants`;
the other tables under RLS (`roles`, `invitations`, `api_keys`, `org_keys`, `sealed_fields`,
`audit_events`, `audit_heads`, `audit_checkpoints`) are covered only through the store's scoped
methods. The product's records and grants are under forced RLS too (`records`, `grants`,
migrations 0012 and 0013), and their HTTP tests run on PostgreSQL."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/transactions.rs",
                tests: &[
                    "scoped_reads_never_cross_tenants",
                    "scoped_write_for_another_org_is_refused",
                    "random_operations_stay_isolated",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/members.rs",
                tests: &["identity_roles_invitations_and_owners_are_scoped"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/api_keys.rs",
                tests: &["identity_api_keys_are_found_by_digest_and_scoped"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/secrets.rs",
                tests: &["vault_secrets_never_cross_organisations"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/audit.rs",
                tests: &["audit_chains_are_per_organisation"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/org_keys.rs",
                tests: &["keyring_shredding_is_per_organisation"],
            },
            Evidence {
                file: "crates/gatehouse-store-postgres/tests/postgres/rls.rs",
                tests: &[
                    "raw_selects_as_the_app_role_see_only_the_scoped_tenant",
                    "raw_selects_as_the_app_role_see_no_other_tenants_vault_rows",
                    "posture_reports_enforced_for_the_app_role_and_bypassed_for_the_owner",
                    "the_own_memberships_policy_reads_one_users_rows_and_writes_nothing",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-postgres/tests/postgres/platform_rls.rs",
                tests: &[
                    "every_table_with_an_organisation_column_or_personal_data_is_under_forced_rls",
                    "raw_selects_on_sessions_and_the_key_index_see_only_the_scope_or_what_was_named",
                    "operators_factors_and_recovery_codes_are_seen_by_their_subject_only",
                    "an_operators_declaration_opens_their_impersonations_only_and_for_ending",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-postgres/src/tx.rs",
                tests: &["a_declaration_replaces_the_last_and_entering_a_scope_forgets_them_all"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/sessions.rs",
                tests: &["identity_many_last_seen_times_and_an_operators_impersonations"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/vault.rs",
                tests: &["another_organisation_cannot_use_reveal_or_list_a_secret"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/transit.rs",
                tests: &["round_trips_bind_context_and_organisation_and_batches_report_each_item"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/tokens.rs",
                tests: &[
                    "org_routes_need_the_tokens_organisation_and_a_mismatch_is_refused_and_audited",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/access_model.rs",
                tests: &["every_listing_and_check_agrees_with_the_model"],
            },
            Evidence {
                file: "crates/gatehouse-store-postgres/tests/postgres/grants_rls.rs",
                tests: &["a_policy_shows_the_grantee_exactly_the_records_a_live_grant_covers"],
            },
        ],
    },
    Control {
        id: "C3",
        title: "Per-resource access levels",
        built: Built::Done(None),
        promise: "Each record is private to named people, open to its organisation or public, and every read, change and listing follows that setting.",
        self_check: "Reports the access levels records may have.",
        ledger: r#"The product's records (issue 19) carry a level (`private` with an allowed list,
`organization` by the type's read permission, `public`), sealed JSON content and tags; reads,
changes, deletions, listings and the check API decide from the level, owner and current
permissions (anonymous callers of the internal check API read public records), and refusals are
audited.

The tests in `crates/gatehouse/tests/it/records.rs` also run on PostgreSQL in CI."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/records.rs",
                tests: &[
                    "each_level_is_read_by_whom_it_says_and_listings_hold_only_that",
                    "writes_need_the_owner_or_the_types_write_permission_and_private_stays_the_owners",
                    "bad_input_is_refused_and_nothing_is_stored",
                    "no_record_of_another_organisation_is_reachable",
                    "an_api_key_owns_the_records_it_creates_as_an_agent",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/product/access.rs",
                tests: &["every_level_reads_and_writes_as_documented"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/records.rs",
                tests: &["records_round_trip_and_list_what_the_caller_may_read"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/access_model.rs",
                tests: &["every_listing_and_check_agrees_with_the_model"],
            },
        ],
    },
    Control {
        id: "C4",
        title: "Cross-tenant grants",
        built: Built::Done(None),
        promise: "Another organisation sees your records only under a grant you made, only what it covers, and only until it expires or you revoke it.",
        self_check: "Reports how grants are made.",
        ledger: r#"A `grants.manage` holder (owners and admins) grants another organisation `read` or `read_write`
access to its records that are not private, optionally limited to types and namespaces, until an
optional expiry; lists, revokes, and is shown received grants. The grantee's members holding the
type's read (write) permission read (change content and tags of) what a live grant covers;
expiry is judged by the injected clock at every decision, cached or not; a revocation applies at
the next request to listings and reads everywhere and to checks on the revoking instance, and to
other instances' checks when the Redis fan-out message arrives (within 30 s without one). Listings that span own and granted records
rank every own record first (`via: grant:{id}`, `organization` on each granted one). On
PostgreSQL a row-level-security policy admits a granted row only under a live grant.

`a_second_instance_refuses_a_revoked_or_expired_grant_at_its_next_request` runs two instances over
one PostgreSQL database and Redis in CI's PostgreSQL run."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/grants.rs",
                tests: &[
                    "a_grant_lets_the_grantees_readers_read_what_it_covers_until_it_expires",
                    "a_revoked_grant_is_refused_at_the_next_request_and_read_write_changes_only_content",
                    "listings_rank_every_own_record_above_every_granted_one_across_pages",
                    "bad_grants_are_refused_and_nothing_is_stored",
                    "a_second_instance_refuses_a_revoked_or_expired_grant_at_its_next_request",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/grants.rs",
                tests: &["grants_cover_what_they_say_until_revoked_or_expired"],
            },
            Evidence {
                file: "crates/gatehouse-store-postgres/tests/postgres/grants_rls.rs",
                tests: &["a_policy_shows_the_grantee_exactly_the_records_a_live_grant_covers"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/access_model.rs",
                tests: &["every_listing_and_check_agrees_with_the_model"],
            },
        ],
    },
    Control {
        id: "C5",
        title: "Rate limiting",
        built: Built::Partial("no test shows the per-user quota refusing"),
        promise: "Requests are rate-limited per address, user and API key, and repeated wrong passwords or codes lock further attempts out for growing periods.",
        self_check: "Reports whether limits are on, their quotas and store, and warns while Redis is unreachable and counts fall back to this process.",
        ledger: r#"GCRA limits per client address by endpoint class, per signed-in user, per API key (its own limit
or its organisation's plan), with sign-in and second-factor lockouts, 429 with an honest
`Retry-After` and the draft `RateLimit` headers, shared across instances through Redis.

The limiter behaviour cases run on the memory limiter and on Redis. Lockouts and the account-mail
throttle are shared through Redis with `store = "redis"`: the lockout behaviour suite
(`crates/gatehouse-store-tests/src/cases/lockouts.rs`) runs on the in-process store and on Redis,
and `three_instances_over_one_database_and_redis_behave_as_one` (listed under E5) shows the sharing
over three instances.

Issue 26 (ASVS 5.0 16.5.3): a limiter or lockout store that errors (no decision at all, Redis's
in-process fallback aside) refuses the auth class of routes (sign-in, second step, password
reset, operator sign-in and the rest of that class) with 503 `dependency_unavailable`; other
classes are let through as before.

Not yet: no test shows the per-user quota refusing (the code applies it in the tenant
extractors); share-link passwords go through the sign-in lockouts (F1)."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/limits.rs",
                tests: &[
                    "headers_follow_the_draft_and_retry_after_is_honest",
                    "an_api_keys_own_limit_overrides_its_plan",
                    "a_sign_in_flood_locks_the_account_with_growing_delays_but_not_other_accounts",
                    "x_forwarded_for_counts_only_from_a_trusted_proxy",
                    "with_redis_unreachable_the_server_serves_and_limits_in_process",
                    "operator_sign_in_locks_out_like_customer_sign_in",
                    "unmatched_paths_are_limited_per_address_too",
                    "paths_hidden_on_a_split_listener_are_limited_like_unmatched_ones",
                    "the_address_lockout_counts_an_ipv6_64_as_one_address",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/mfa.rs",
                tests: &["wrong_codes_lock_the_account_out_with_growing_delays"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/security_events.rs",
                tests: &[
                    "sign_in_paths_fail_closed_when_the_limiter_or_lockouts_error",
                    "the_second_step_and_step_up_fail_closed_when_the_factor_count_errors",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/limits/gcra.rs",
                tests: &[
                    "a_burst_of_the_whole_quota_then_the_sustained_rate",
                    "an_idle_key_recovers_its_whole_quota",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/limits/lockout_tests.rs",
                tests: &["lock_lengths_double_from_the_threshold_to_the_cap"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/limiter.rs",
                tests: &[
                    "limiter_allows_a_burst_then_refuses_with_an_honest_retry_after",
                    "limiter_keys_are_independent",
                    "limiter_concurrent_decisions_never_exceed_the_quota",
                    "limiter_recovers_the_whole_quota_after_the_window",
                ],
            },
            Evidence {
                file: "crates/gatehouse-infra/tests/redis_limiter.rs",
                tests: &[
                    "two_limiters_sharing_one_redis_enforce_one_limit",
                    "a_dead_store_falls_back_to_the_in_process_limiter",
                    "when_redis_goes_away_limiting_falls_back_and_recovers_when_it_returns",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/redis_shared.rs",
                tests: &["two_processes_sharing_redis_enforce_one_global_limit"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/lockouts.rs",
                tests: &[
                    "lockouts_lock_at_the_threshold_and_the_lock_doubles_to_its_cap",
                    "lockouts_throttle_lets_one_through_per_period",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/three_instances.rs",
                tests: &["three_instances_over_one_database_and_redis_behave_as_one"],
            },
            Evidence {
                file: "crates/gatehouse-http/src/route_facts.rs",
                tests: &["every_limited_route_has_the_class_it_was_declared_with"],
            },
            Evidence {
                file: "crates/gatehouse-core/src/limits/mod.rs",
                tests: &["ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4"],
            },
        ],
    },
    Control {
        id: "C6",
        title: "CORS allow-list",
        built: Built::Done(None),
        promise: "Browsers may call the API from another website only if that exact website is configured.",
        self_check: "Reports the allowed origins (a wildcard is refused at load).",
        ledger: r#"Only configured exact origins get CORS headers; a wildcard is refused when the configuration
loads."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/cors.rs",
                tests: &[
                    "allowed_origin_gets_cors_headers_and_preflight",
                    "other_origins_get_no_cors_headers",
                    "no_configured_origins_means_no_cors_headers",
                    "the_csrf_header_is_allowed_cross_origin",
                ],
            },
            Evidence {
                file: "crates/gatehouse/src/config/tests.rs",
                tests: &["cors_wildcard_is_refused_from_file_and_env"],
            },
        ],
    },
];
