//! The storage behaviour suite. Each case is a public async function that takes a fresh, migrated,
//! empty store; [`behaviour_suite!`] emits one named `#[tokio::test]` per case in a backend crate,
//! so `cargo nextest` reports every case per backend and a backend that cannot start fails its
//! tests rather than skipping them. The cases are filed by store role under `cases/`, one file per
//! role named as core's `store/<role>.rs` (and each backend's `src/<role>.rs`).
#![forbid(unsafe_code)]
// This crate is test code shipped as a library: a failed expectation must panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod cases;
mod data;

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_core::store::Store;

/// A fresh store for one case. `finish` tears it down (drops the database).
#[async_trait]
pub trait Fixture: Send + Sync {
    fn store(&self) -> Arc<dyn Store>;
    /// Runs raw SQL as the schema owner, past any trigger: how the tamper cases edit the
    /// database behind Gatehouse's back. Each statement is one string.
    async fn tamper(&self, statements: &[&str]);
    /// Runs raw SQL as the application's own connection would; returns the error, if any.
    async fn exec_as_app(&self, sql: &str) -> Result<(), String>;
    /// Runs raw SQL as the schema owner, past row-level security (triggers and constraints
    /// still apply): how a case inspects stored state the application's role is not shown.
    async fn probe(&self, sql: &str) -> Result<(), String>;
    /// A uuid literal in this backend's SQL, from its 32 hex digits.
    fn uuid_literal(&self, simple_hex: &str) -> String;
    async fn finish(self);
}

/// Emits one test per case. `$fresh` is an async fn returning a [`Fixture`]. The cases are listed
/// by store role, as they are filed under `cases/`; a test is named after its case alone.
#[macro_export]
macro_rules! behaviour_suite {
    ($fresh:path) => {
        $crate::behaviour_suite!(@store $fresh; transactions;
            ping_answers,
            dropped_transaction_leaves_nothing,
            reads_do_not_wait_for_a_writer,
            scoped_reads_never_cross_tenants,
            scoped_write_for_another_org_is_refused,
            pagination_walks_every_row_once,
            random_operations_stay_isolated
        );
        $crate::behaviour_suite!(@store $fresh; users;
            user_round_trips_exactly,
            email_is_unique,
            identity_memberships_of_a_user_span_organisations_and_only_theirs,
            password_census_counts_and_lists_within_its_bounds,
            password_census_counts_hashes_below_the_configured_cost,
            identity_an_account_is_disabled_and_enabled_once
        );
        $crate::behaviour_suite!(@fixture $fresh; users;
            second_factor_email_is_verified_once
        );
        $crate::behaviour_suite!(@store $fresh; organizations;
            organization_with_owner
        );
        $crate::behaviour_suite!(@store $fresh; apps;
            apps_are_unique_by_audience_listed_oldest_first_and_removed
        );
        $crate::behaviour_suite!(@store $fresh; operators;
            identity_operator_emails_are_unique,
            identity_an_operators_totp_step_is_spent_once
        );
        $crate::behaviour_suite!(@store $fresh; members;
            duplicate_membership_is_a_conflict,
            identity_roles_invitations_and_owners_are_scoped,
            pending_invitations_page_and_revoke_within_their_scope
        );
        $crate::behaviour_suite!(@store $fresh; sessions;
            identity_sessions_rotate_once_and_revoke,
            identity_many_last_seen_times_and_an_operators_impersonations,
            identity_revoked_sessions_are_refused_on_the_next_request,
            identity_a_members_sessions_in_one_organisation_end_at_once
        );
        $crate::behaviour_suite!(@fixture $fresh; sessions;
            second_factor_session_auth_is_recorded_on_live_sessions_only
        );
        $crate::behaviour_suite!(@store $fresh; api_keys;
            identity_api_keys_are_found_by_digest_and_scoped
        );
        $crate::behaviour_suite!(@fixture $fresh; second_factor;
            second_factor_pending_totp_is_replaced_until_confirmed,
            second_factor_totp_steps_are_never_replayed,
            second_factor_delete_removes_factor_and_recovery_codes,
            second_factor_recovery_codes_are_single_use_and_personal,
            second_factor_unused_recovery_codes_are_listed_per_user
        );
        $crate::behaviour_suite!(@fixture $fresh; one_time_tokens;
            second_factor_one_time_tokens_are_spent_once
        );
        $crate::behaviour_suite!(@store $fresh; connectors;
            connectors_a_held_connector_is_read_as_its_holder_left_it
        );
        $crate::behaviour_suite!(@store $fresh; oauth_states;
            oauth_states_are_spent_once_by_digest_and_never_expired,
            oauth_states_are_signed_bound_short_lived_and_single_use
        );
        $crate::behaviour_suite!(@fixture $fresh; outbox;
            second_factor_mail_commits_with_its_transaction,
            second_factor_mail_is_leased_retried_and_delivered,
            second_factor_concurrent_claims_never_share_a_message
        );
        $crate::behaviour_suite!(@fixture $fresh; key_material;
            second_factor_platform_keys_are_listed_and_rewrapped,
            key_material_lock_makes_creators_take_turns
        );
        $crate::behaviour_suite!(@store $fresh; key_material;
            keyring_refuses_a_wrong_master_key,
            keyrings_started_at_once_on_a_new_store_share_one_set_of_keys
        );
        $crate::behaviour_suite!(@store $fresh; org_keys;
            vault_transit_floor_is_unset_then_set_then_moved,
            identity_second_factor_policy_is_per_organisation_and_reports_changes,
            keyring_shredding_is_per_organisation,
            keyring_counter_rotates_at_its_bound
        );
        $crate::behaviour_suite!(@store $fresh; sealed_fields;
            keyring_round_trip_for_every_kind,
            keyring_moved_or_modified_ciphertexts_fail
        );
        $crate::behaviour_suite!(@store $fresh; keyring;
            keyring_rotations_keep_data_readable_and_resume,
            keyring_link_keys_rotate_with_an_overlap_and_survive_a_master_rotation
        );
        $crate::behaviour_suite!(@store $fresh; records;
            records_round_trip_and_list_what_the_caller_may_read
        );
        $crate::behaviour_suite!(@store $fresh; share_links;
            share_links_count_views_change_generation_and_stay_in_their_organisation
        );
        $crate::behaviour_suite!(@store $fresh; sso;
            sso_configuration_is_the_organisations_own,
            sso_a_domain_is_verified_by_one_organisation_and_found_only_once_verified,
            sso_external_identities_are_unique_and_listed_per_person,
            sso_an_organisations_links_end_together,
            sso_a_session_says_how_it_began,
            sso_the_sessions_an_organisations_sign_on_began_end_together
        );
        $crate::behaviour_suite!(@store $fresh; webhooks;
            webhooks_lease_deliveries_once_and_stay_in_their_organisation
        );
        $crate::behaviour_suite!(@store $fresh; grants;
            grants_cover_what_they_say_until_revoked_or_expired
        );
        $crate::behaviour_suite!(@store $fresh; housekeeping;
            lease_has_one_holder_until_it_expires_or_is_released,
            purge_finds_and_removes_expired_data_in_batches_and_nothing_else,
            prune_removes_spent_rows_past_their_cutoff_only,
            mail_is_found_and_erased_by_its_recipient_only
        );
        $crate::behaviour_suite!(@store $fresh; secrets;
            vault_secrets_round_trip_and_list_newest_first,
            vault_live_secret_names_are_unique,
            vault_versions_advance_one_at_a_time_until_deleted,
            vault_secrets_never_cross_organisations
        );
        $crate::behaviour_suite!(@fixture $fresh; audit;
            audit_rolled_back_changes_leave_no_event,
            audit_concurrent_writers_make_one_chain,
            audit_group_commit_makes_one_chain_and_acknowledges_durably,
            audit_verify_names_the_first_tampered_event,
            audit_events_are_append_only,
            audit_an_erased_organisation_gets_no_new_chain,
            audit_chains_are_per_organisation,
            audit_batches_continue_the_chain_across_insert_chunks,
            audit_filters_and_cursors_return_exactly_the_right_events,
            audit_erased_personal_data_is_unreadable_and_the_chain_verifies,
            audit_truncation_after_a_signed_checkpoint_is_detected
        );
        $crate::behaviour_suite!(@fixture $fresh; audit_spot;
            audit_spot_check_passes_intact_chains_and_comes_round_to_every_chain,
            audit_spot_check_names_each_tampered_chain,
            audit_spot_check_keeps_to_its_caps,
            audit_spot_check_names_an_organisation_whose_chain_is_empty
        );
    };
    // Cases that take the fixture (raw SQL, uuid literals) and those that take only its store.
    (@fixture $fresh:path; $role:ident; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fresh().await;
                $crate::cases::$role::$case(&fixture).await;
                $crate::Fixture::finish(fixture).await;
            }
        )*
    };
    (@store $fresh:path; $role:ident; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fresh().await;
                $crate::cases::$role::$case($crate::Fixture::store(&fixture)).await;
                $crate::Fixture::finish(fixture).await;
            }
        )*
    };
}
