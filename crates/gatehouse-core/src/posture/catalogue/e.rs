//! Family E of the catalogue (see `super`).

use super::{Built, Control, Evidence};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "E1",
        title: "Audit log",
        built: Built::Done(None),
        promise: "Every change is recorded in a tamper-evident audit log that cannot be edited, which your organisation can search and export.",
        self_check: "Checks the operators' chain and up to 32 organisations' chains per report, in rotation: the newest signed checkpoint's signature, the event it signed, and at most 100 events after it towards the head (a chain not yet signed: its newest 100 events' links). Warns when an event has gone unsigned for more than four signing intervals (a lease takeover and a tick: signing stopped, or checkpoints were removed) and when an organisation's chain holds no event at all (creating one records an event). Earlier events are left to `gatehouse audit verify`.",
        ledger: r#"Every change commits with its event on the organisation's (or the operators') hash chain;
events cannot be updated or deleted while their organisation exists (an organisation's erasure
takes its chain with it); signed checkpoints and `gatehouse audit verify` detect tampering and
truncation; the log is queryable with filters and cursors and exportable as NDJSON, and each
export is itself recorded; personal data in events can be erased without breaking the chain.
The product appends its own events (`POST /internal/v1/audit-events`, one or up to 1,000 per
call, all or nothing) on behalf of a member or key of the organisation, with action, resource,
outcome, detail, request id, and IP and user agent sealed under the actor's key, through the
group-commit writer, answered once durable; an event naming another organisation's people, keys,
secrets, grants or records, or one of Gatehouse's own verbs, is refused. A key's use is recorded
as one `api_key.used` event per flush (its count), not a row per request. Mechanics:
docs/design/audit.md.

Gatehouse's own events carry IP and user agent on sign-up and session events (sign-in, refresh,
sign-out and the like); its other events carry actor, action, resource, organisation, time and
request id.

Issue 26 (ASVS 5.0 16.2.1, 16.3.1 to 16.3.3): security events (failed and locked-out sign-ins,
operators' failed sign-ins, refused tokens and API keys, wrong-audience tokens, failed service
authentication, CSRF failures) are counted in memory per kind, chain, source address (the
trusted-proxy rule), subject and minute, and written when the minute closes (and at shutdown):
at most `[security_events] max_per_minute` aggregate events per minute per instance, and one
`security.events_folded` event counting the rest and its distinct sources. They go on the
organisation's chain when it is known (a CSRF failure), else the operators'. Refused
permissions stay one event each on the organisation's chain. The access line carries
`client_ip`."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/audit.rs",
                tests: &[
                    "audit_rolled_back_changes_leave_no_event",
                    "audit_concurrent_writers_make_one_chain",
                    "audit_group_commit_makes_one_chain_and_acknowledges_durably",
                    "audit_verify_names_the_first_tampered_event",
                    "audit_events_are_append_only",
                    "audit_chains_are_per_organisation",
                    "audit_batches_continue_the_chain_across_insert_chunks",
                    "audit_filters_and_cursors_return_exactly_the_right_events",
                    "audit_erased_personal_data_is_unreadable_and_the_chain_verifies",
                    "audit_truncation_after_a_signed_checkpoint_is_detected",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/audit_api.rs",
                tests: &[
                    "filters_and_cursors_page_through_exactly_the_right_events",
                    "export_streams_every_matching_event_as_ndjson",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/product_events.rs",
                tests: &[
                    "product_events_land_on_the_chain_with_actor_resource_ip_and_request_id",
                    "an_event_naming_another_organisations_resources_is_refused_and_nothing_is_written",
                    "an_audit_export_and_a_keys_use_are_recorded",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/process.rs",
                tests: &["audit_verify_passes_then_names_a_tampered_event"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/roles.rs",
                tests: &["a_viewer_is_refused_every_sensitive_action_and_each_refusal_is_audited"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/security_events.rs",
                tests: &[
                    "a_flood_of_failed_sign_ins_is_aggregated_per_source_within_the_bound",
                    "refused_credentials_are_recorded_with_their_source_and_flushed_at_shutdown",
                    "a_flood_past_the_bound_is_folded_with_its_kinds_and_busiest_sources",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/audit/security_tests.rs",
                tests: &[
                    "repeats_fold_into_one_event_per_source_subject_and_kind",
                    "an_address_beside_an_id_is_sealed_on_the_persons_chain_or_digested",
                    "past_the_bound_attempts_fold_into_one_counted_event",
                    "a_brute_force_after_the_tallies_are_full_shows_in_the_folded_event",
                    "one_source_names_a_bounded_number_of_subjects_a_minute",
                    "a_late_record_counts_in_the_first_minute_not_yet_written",
                    "a_minute_is_written_only_once_it_has_closed",
                    "ipv6_sources_count_per_64_and_text_is_bounded",
                    "minutes_waiting_for_a_flush_are_bounded",
                ],
            },
        ],
    },
    Control {
        id: "E2",
        title: "Structured logs",
        built: Built::Done(None),
        promise: "Logs are structured JSON lines, and each request can be followed across services by its trace id.",
        self_check: "Reports the log format and level, and warns for text logs.",
        ledger: r#"JSON lines with the request's W3C trace id (an incoming `traceparent` is accepted and
propagated) and per-stage timings; optional OTLP span export."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/process.rs",
                tests: &[
                    "every_log_line_is_json_and_request_lines_carry_the_request_id",
                    "traced_requests_log_the_trace_id_the_caller_and_per_stage_timings",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/otlp.rs",
                tests: &[
                    "each_request_reaches_the_collector_as_a_server_span_in_the_callers_trace",
                    "stopping_the_server_sends_the_last_spans",
                    "a_missing_collector_degrades_export_without_slowing_requests_and_export_resumes",
                ],
            },
            Evidence {
                file: "crates/gatehouse-http/src/middleware/traceparent.rs",
                tests: &["spec_examples", "never_panics_and_accepts_only_hex"],
            },
            Evidence {
                file: "crates/gatehouse-core/src/telemetry/mod.rs",
                tests: &["stages_add_up_inside_a_request_and_vanish_outside"],
            },
            Evidence {
                file: "crates/gatehouse/src/logging.rs",
                tests: &["access_line_pieces_are_json_whatever_they_hold"],
            },
        ],
    },
    Control {
        id: "E3",
        title: "Metrics",
        built: Built::Done(None),
        promise: "The service publishes request counts, latencies and error counts for monitoring.",
        self_check: "Warns when metrics are off; otherwise checks that the registry, gathered as a scrape would, has the always-present gauges `gatehouse_password_hash_queue_depth` and `gatehouse_connections_open`.",
        ledger: r#"Prometheus text with request counts, latency histograms per route, a per-organisation breakdown
of bounded cardinality, and component error counters.

Made-up methods and paths (10,000 of them in the test) add no series."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/metrics.rs",
                tests: &[
                    "metrics_are_valid_prometheus_text_with_per_route_quantiles_behind_service_auth",
                    "organisation_series_stay_bounded_with_a_thousand_organisations",
                    "switched_off_metrics_record_nothing_and_serve_nothing",
                    "made_up_methods_and_paths_leave_the_series_bounded",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/telemetry/orgs.rs",
                tests: &[
                    "a_thousand_organisations_export_the_top_n_and_other",
                    "past_the_tracked_bound_requests_are_still_counted",
                ],
            },
        ],
    },
    Control {
        id: "E4",
        title: "Health",
        built: Built::Done(None),
        promise: "Health endpoints tell the operator whether the service can serve, checking its database, keys and password hashing.",
        self_check: "Runs the readiness checks and reports the failing or degraded ones.",
        ledger: r#"`/health/live` and `/health/ready`, the latter checking the store, the keys and the hashing pool,
and reporting Redis, fan-out, OTLP and mail without failing on them.

Issue 18: the public probe names only the deciding checks, with no detail; operators read details at
`/admin/v1/health`."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/health.rs",
                tests: &[
                    "live_and_ready_report_their_checks",
                    "ready_fails_and_requests_degrade_to_503_when_the_store_is_unreachable",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/degradation.rs",
                tests: &[
                    "redis_going_away_degrades_limits_and_fanout_and_both_resume_when_it_returns",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/recovery.rs",
                tests: &["the_public_readiness_probe_does_not_move_when_a_reset_is_mailed"],
            },
        ],
    },
    Control {
        id: "E5",
        title: "Scale-out",
        built: Built::Done(Some(
            "revocations reach other instances before the answer on a best-effort basis, else within their cache bound",
        )),
        promise: "Several servers can run as one: limits, lockouts and revocations are shared, and a server that crashes loses nothing it had confirmed.",
        self_check: "Not applicable on SQLite; on PostgreSQL passes with Redis holding the rate limits, and warns without Redis, with `rate_limits.store = \"memory\"`, or while Redis is unreachable (limits, lockouts or revocations falling back to this process).",
        ledger: r#"Several instances over one PostgreSQL database and one Redis behave as one (issue 23): they start
at once on a new database; rate limits, every lockout (sign-in, second factor, step-up,
share-link passwords) and the account-mail throttle are shared through Redis
(`rate_limits.store = "redis"`); a revocation is committed, applied locally and published on Redis
before the change is answered (best effort: at most 2 s of waiting, and an instance that misses
the message honours it within its cache bound, 30 s for sessions, 10 s for API keys, 5 s for
share-link rows); re-encryption, checkpoints and the lifecycle job run under leases in the
database, one instance at a time, taken over within three intervals of a holder's death; audit
appends and mail and webhook claims are serialised by the store; connections to PostgreSQL and
Redis can be encrypted and verified; instances killed with SIGKILL lose nothing acknowledged.

Must 1, three processes as one: `crates/gatehouse/tests/instances.rs` starts three instances at once
on a new PostgreSQL database (five rounds, migrations at start racing too; one row of each key
afterwards) and on a new SQLite file, and shows that every instance names one holder per periodic
job, only the holder's `gatehouse_job_runs_total` moves, and a killed holder's jobs are taken over
within the three-interval bound. `crates/gatehouse/tests/three_instances.rs` sends requests
round-robin over three processes on PostgreSQL and Redis: a sign-in flood locks after the same five
failures as one instance; a revoked session, API key, grant and share link are refused by all three
on their next request; an operator-route limit of 30 a minute holds over the three, within the
quota's refill during the burst plus one. The shared lockouts are the lockout behaviour suite, run
on the in-process store (`crates/gatehouse-store-tests/tests/lockouts_memory.rs`) and on Redis
(`crates/gatehouse-infra/tests/redis_lockouts.rs`); the store suite also covers leases, the start-up
race and concurrent writers, and `crates/gatehouse/tests/redis_shared.rs` runs two processes sharing
Redis over one SQLite data directory.

Must 2, the drills (`crates/gatehouse/tests/drill/main.rs`): 20 SIGKILLs under sign-ups, sign-ins,
record, role and secret changes, transit calls, webhook events and the product's mail, on three
instances over PostgreSQL and Redis and on one over SQLite: every 2xx is read back,
`gatehouse audit verify` passes, no chain has a gap, every queued message and event arrives, a
repeat only under the same `webhook-id`, and at most one message sent twice per kill. Must 3:
PostgreSQL restarted under load (`crates/gatehouse/tests/drill/pg_restart.rs`).

Must 4, TLS: libpq's `sslmode` and `sslrootcert` for PostgreSQL, `rediss://` and `redis_ca_file` for
Redis, rustls on aws-lc-rs; production refuses an unencrypted connection off loopback, and
`sslmode=verify-ca` there, unless `allow_plaintext_engines = true`
([design/engines-tls.md](design/engines-tls.md)); `crates/gatehouse/src/config/engines.rs` holds the
load-time refusals.

Must 5, benchmarks, with their figures in docs/SCALING.md: `bench/roundtrips.py --quick --check` (in
`.ci/run`) holds the round trips, statements, transactions and rows written of a sign-in, a token
verify and three audited changes on PostgreSQL to the figures in docs/SCALING.md;
`python3 bench/run.py --only scaleout` (`bench/scaleout.py`, run by hand, not in CI) measures verify
throughput on three instances beside one, in the same run.

The deployment (roles, migrations, Redis, the systemd unit, nginx, the settings every instance must
share, what each control does when one dies) is in docs/SCALING.md and `deploy/`;
`crates/gatehouse/tests/deploy.rs` checks the unit and the example configuration, and
`deploy/nginx/failover.py` is run by hand (nginx is not in CI).

Limits, stated rather than missing: while Redis is away each instance limits and counts lockouts
in-process, and those counts are not carried into Redis when it returns (around an outage N
instances allow up to (N+1) times a threshold); the fan-out is pub/sub, so a message an instance
misses is covered only by its cache bound; Redis must run with `maxmemory-policy noeviction` (an
evicting policy resets the counts it drops); and `sslmode=verify-full` also accepts a publicly
trusted certificate for the same host name, because the driver adds the public roots to
`sslrootcert`."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/instances.rs",
                tests: &[
                    "three_instances_started_at_once_on_a_new_postgres_database_become_ready_and_agree",
                    "three_instances_started_at_once_on_a_new_sqlite_file_become_ready_and_agree",
                    "each_periodic_job_runs_on_one_of_three_instances_and_moves_when_its_holder_is_killed",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/three_instances.rs",
                tests: &["three_instances_over_one_database_and_redis_behave_as_one"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/lockouts.rs",
                tests: &[
                    "lockouts_lock_at_the_threshold_and_the_lock_doubles_to_its_cap",
                    "lockouts_count_all_or_none",
                    "lockouts_kinds_and_subjects_are_independent",
                    "lockouts_a_refund_takes_back_one_attempt_and_its_lock",
                    "lockouts_clear_and_clear_group_forget_exactly_their_counts",
                    "lockouts_old_failures_are_forgotten",
                    "lockouts_parallel_attempts_never_pass_the_threshold",
                    "lockouts_throttle_lets_one_through_per_period",
                ],
            },
            Evidence {
                file: "crates/gatehouse-infra/tests/redis_lockouts.rs",
                tests: &[
                    "two_stores_sharing_one_redis_keep_one_count",
                    "no_subject_text_reaches_redis",
                    "a_dead_store_falls_back_to_counting_in_this_process",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/housekeeping.rs",
                tests: &["lease_has_one_holder_until_it_expires_or_is_released"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/key_material.rs",
                tests: &[
                    "key_material_lock_makes_creators_take_turns",
                    "keyrings_started_at_once_on_a_new_store_share_one_set_of_keys",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/jobs_tests.rs",
                tests: &[
                    "the_lease_is_two_intervals_and_takeover_is_bounded_by_three",
                    "one_of_three_instances_runs_each_tick_while_it_keeps_renewing",
                    "a_dead_holder_is_replaced_once_its_lease_runs_out_and_not_before",
                    "a_released_lease_is_taken_at_the_next_tick",
                    "a_failed_batch_is_recorded_and_an_unreachable_store_runs_nothing",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/redis_shared.rs",
                tests: &[
                    "two_processes_sharing_redis_enforce_one_global_limit",
                    "a_session_revoked_on_one_instance_is_refused_by_the_other_at_once",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/audit.rs",
                tests: &["audit_concurrent_writers_make_one_chain"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/outbox.rs",
                tests: &["second_factor_concurrent_claims_never_share_a_message"],
            },
            Evidence {
                file: "crates/gatehouse/tests/drill/main.rs",
                tests: &[
                    "drill_three_instances_on_postgres_and_redis_lose_nothing_acknowledged",
                    "drill_one_instance_on_sqlite_loses_nothing_acknowledged",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/drill/pg_restart.rs",
                tests: &[
                    "postgres_stopped_under_load_answers_503_store_unavailable_then_recovers_in_process",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-postgres/tests/postgres/unavailable.rs",
                tests: &["a_connection_the_server_ends_mid_transaction_is_unavailable"],
            },
            Evidence {
                file: "crates/gatehouse/tests/engines_tls.rs",
                tests: &[
                    "postgres_over_tls_verify_full_refuses_another_name_and_the_right_ca_and_name_work",
                    "redis_over_tls_shares_limits_and_revocations_and_falls_back_while_it_is_away",
                ],
            },
            Evidence {
                file: "crates/gatehouse/src/config/engines.rs",
                tests: &[
                    "sslmode_and_the_ca_file_are_checked_at_load",
                    "production_refuses_postgres_off_loopback_without_sure_encryption",
                    "redis_tls_settings_are_checked_and_production_wants_tls_off_loopback",
                    "config_load_applies_the_rules_to_every_engine_url",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/deploy.rs",
                tests: &[
                    "the_unit_passes_systemd_analyze_verify_without_a_word",
                    "the_units_sandbox_is_rated_ok_by_systemd_analyze_security",
                    "the_example_configuration_is_valid_in_production_mode",
                ],
            },
        ],
    },
];
