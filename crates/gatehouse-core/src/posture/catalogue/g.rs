//! Family G of the catalogue (see `super`).

use super::{Built, Control, Evidence};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "G1",
        title: "Export",
        built: Built::Done(None),
        promise: "You can export everything the service stores about you, and an administrator everything about the organisation, as a machine-readable file.",
        self_check: "Reports how exports are paged.",
        ledger: r#"Everything Gatehouse stores about a person (`GET /v1/me/export`, themself; `POST /v1/exports`
with `user_id`, an administrator with `data.export` and step-up, that organisation's part) or an
organisation (`POST /v1/exports`): account, memberships, sessions and devices, factors as
metadata only, mail (template and times; their own export only), API keys they made, records
they own with content (not those already expired), audit events naming them with their own
personal fields opened while their key exists; for an organisation also its roles, every member
as above (sessions in it only, no mail), all its keys, records, grants given and received,
secrets as metadata and its whole chain. The person's own export needs a step-up in their own
session (no impersonation, no API key). Streamed NDJSON with a versioned header line
(`gatehouse.export`, version 1) and a resumable cursor; every page is authorised and recorded
(`data.exported`) before it is read.

The person's export test plants one of each kind of row and finds nothing of another organisation's
or another member's; read a page at a time, it gives the same lines in the same order."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/exports.rs",
                tests: &[
                    "a_persons_export_holds_each_kind_of_their_rows_only_and_resumes_exactly",
                    "an_organisation_export_needs_step_up_and_stays_inside_the_organisation",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/data_rights/export.rs",
                tests: &["positions_round_trip_and_foreign_cursors_are_refused"],
            },
        ],
    },
    Control {
        id: "G2",
        title: "Erasure",
        built: Built::Partial("no erasure of audit events by date range"),
        promise: "Erasing an account, records or an organisation deletes them for good rather than hiding them; audit events that named a person stay, with their personal details made unreadable.",
        self_check: "Reports how erasure deletes.",
        ledger: r#"Hard deletion, never soft: a person by themself (`POST /v1/me/erase`: password, and a recent
second factor when enrolled; never the last owner of an organisation with other members; the
organisations only they belong to go whole with them), a member by an administrator (`POST
/v1/erasures` with `user_id`, `data.delete` and step-up, inside that organisation and under the
member-removal rules; the account too when it was their only organisation, and then their
subject key and invitations in organisations they left), an operator
(`gatehouse erase user`, with `--dry-run`); records by ids or by creation range (`POST
/v1/erasures`); an organisation by its owner (`DELETE /v1/organization`, naming it) or an
operator (`gatehouse erase organization`). A person's erasure deletes the account, sessions,
devices, one-time tokens, factor and codes, mail rows, invitations to their address, their
records and memberships, revokes the API keys they made, forgets their lockout entries, revokes
cached sessions on every instance through the fan-out, destroys their subject key in every
organisation (the events that named them stay and verify, their personal fields no longer
open), and truncates SQLite's write-ahead log. An organisation's erasure crypto-shreds its data
keys, then deletes every row of it, its audit chain included (the operators' chain records it).

The process test searches the SQLite database, WAL and shared-memory files byte by byte,
`gatehouse audit verify` passes, and the dry run changes nothing. On PostgreSQL in CI the person's
erasure test reads every table's text (bytea as hex) as the owner; the tables an organisation's
erasure is checked against are read from the schema.

Not yet: erasing audit events by date range (a chain cannot lose events in its middle; pruning a
prefix anchored at a signed checkpoint is the design, not built). Lockout entries are forgotten
in the erasing process only; other instances forget them when they run out (held in memory,
never written). Mail rows queued before migration 0014 carry no recipient digest, so export and
erasure do not find them (they are pruned after delivery like any other). Invitations to an
address that never became an account are erased only with their organisation. PostgreSQL keeps
dead row versions (unreadable through SQL) until vacuum, and its WAL and backups keep what they
kept: erasure there is complete for everything reachable through the database, not for disks
and backups, which the operator's retention governs."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/process/erase.rs",
                tests: &[
                    "an_erased_person_leaves_no_byte_in_the_database_files_and_the_chains_verify",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-postgres/tests/postgres/rls.rs",
                tests: &["audit_rows_are_deleted_only_with_their_organisation"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/erasure.rs",
                tests: &[
                    "a_person_erases_themself_and_no_text_of_them_is_left_while_the_chain_verifies",
                    "an_erased_organisation_leaves_no_row_and_nothing_opens_its_sealed_values",
                    "refused_erasures_touch_nothing",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/audit.rs",
                tests: &["audit_erased_personal_data_is_unreadable_and_the_chain_verifies"],
            },
        ],
    },
    Control {
        id: "G3",
        title: "TTL",
        built: Built::Done(None),
        promise: "Records and secrets given an expiry are unreachable from that moment and physically removed within a minute.",
        self_check: "Reports the purge interval; warns when this instance's last purge failed, or when it holds the purge's lease and has not purged for three intervals.",
        ledger: r#"The product's records and shared secrets with an `expires_at` are gone from that instant
(injected clock) on every path: reads, changes, deletes, listings own and granted (the store
filters by the time), checks (cached state included); sessions were already refused once
expired. A background job removes them physically within a minute: every
`lifecycle.purge_interval_secs` (1 to 15, default 10) the instance holding the `lifecycle` lease
(a row in the database, taken or renewed by one conditional upsert, lasting two intervals and
renewed between organisations) purges them in batches of `lifecycle.batch` with one audit event
per batch, and prunes expired and revoked sessions (retention 0 by default); deleted secrets go
the same way. When the holder dies another instance takes over within three intervals. Other
spent rows (one-time tokens, used recovery codes, delivered and dead mail) are pruned after
their retention; mail is given up (dead, body erased) after `mail.max_attempts` attempts or
`mail.max_refusals` permanent refusals.

The lifecycle tests also run on PostgreSQL in CI; the purge test runs the real binary in real time."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/records.rs",
                tests: &["an_expired_record_is_gone_at_its_expiry_instant_everywhere"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/lifecycle.rs",
                tests: &[
                    "expired_records_and_secrets_are_purged_in_batches_with_one_event_each",
                    "with_two_instances_the_lease_holder_purges_each_batch_once",
                    "spent_sessions_are_pruned_after_their_retention_with_an_operators_event",
                    "by_default_an_expired_or_revoked_session_goes_at_the_next_purge",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/process/purge.rs",
                tests: &["an_expired_record_is_physically_gone_within_a_minute"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/recovery.rs",
                tests: &["mail_the_relay_refuses_for_good_goes_dead_after_bounded_attempts"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/housekeeping.rs",
                tests: &[
                    "lease_has_one_holder_until_it_expires_or_is_released",
                    "purge_finds_and_removes_expired_data_in_batches_and_nothing_else",
                    "prune_removes_spent_rows_past_their_cutoff_only",
                    "mail_is_found_and_erased_by_its_recipient_only",
                ],
            },
            Evidence {
                file: "crates/gatehouse/src/config/tests.rs",
                tests: &["lifecycle_settings_that_break_the_minute_or_retry_for_ever_are_refused"],
            },
        ],
    },
];
