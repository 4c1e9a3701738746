//! Family D of the catalogue (see `super`).

use super::{Built, Control, Evidence};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "D1",
        title: "Field encryption at rest",
        built: Built::Done(None),
        promise: "Sensitive fields are encrypted with keys specific to your organisation, and destroying those keys makes the data unreadable.",
        self_check: "Reports the master key's version and source (a generated development key warns). Reads up to 25 organisations' data keys per report, in rotation, one page of ids at a time and stopping after 20 ms, and reports their newest versions and the values among them awaiting re-encryption (without warning).",
        ledger: r#"AES-256-GCM envelopes under per-organisation data keys wrapped by a versioned master key from the
environment, a file (never from the TOML file) or an HSM over PKCS#11, where the key never leaves
the token and wrapping is AES-256-GCM inside it; each ciphertext is bound to organisation, kind,
record and field; new key versions encrypt while old ones still decrypt; re-encryption runs in the
background and resumes after a crash; destroying an organisation's keys makes its data unreadable.
Mechanics: docs/design/keyring.md.

The PKCS#11 test uses SoftHSM2, with the token and keys made by the test: values sealed under a file
key stay readable after `keys rotate-master` to an HSM key killed with SIGKILL part-way and run
again, then to a second HSM key; a wrong PIN refuses the start with a sentence and changes no file;
`serve` on the HSM key opens every sealed value; no file in the data directory (the SQLite files
included) holds either HSM key's bytes.

Notes: there is no cloud KMS API adapter (the catalogue allows environment, file or KMS); cloud
HSMs that offer a PKCS#11 library (AWS CloudHSM, Azure Dedicated/Managed HSM, Google Cloud HSM's
`libkmsp11`, Thales Luna, Entrust nShield) take the same `[master_key_pkcs11]` settings but are
untested here, only SoftHSM2 is; tokens that refuse a caller-supplied GCM IV are not supported
yet (docs/design/keyring.md). Master-key
rewrapping is a resumable CLI command (`gatehouse keys rotate-master`), not a background job;
data-key re-encryption is the background part."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/sealed_fields.rs",
                tests: &[
                    "keyring_round_trip_for_every_kind",
                    "keyring_moved_or_modified_ciphertexts_fail",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/keyring.rs",
                tests: &["keyring_rotations_keep_data_readable_and_resume"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/org_keys.rs",
                tests: &[
                    "keyring_counter_rotates_at_its_bound",
                    "keyring_shredding_is_per_organisation",
                    "vault_transit_floor_is_unset_then_set_then_moved",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/key_material.rs",
                tests: &[
                    "keyring_refuses_a_wrong_master_key",
                    "second_factor_platform_keys_are_listed_and_rewrapped",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/process.rs",
                tests: &[
                    "keys_commands_and_a_wrong_master_key_at_start_up",
                    "reencryption_killed_mid_job_is_completed_after_restart",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/process/pkcs11.rs",
                tests: &[
                    "pkcs11_rotation_from_a_file_key_survives_kill_9_then_moves_between_hsm_keys",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/keyring/kek.rs",
                tests: &["a_local_key_recognises_only_its_own_check_value"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/transit.rs",
                tests: &[
                    "round_trips_bind_context_and_organisation_and_batches_report_each_item",
                    "after_rotation_rewrap_moves_to_the_new_version_and_old_ones_open_until_the_floor_rises",
                ],
            },
            Evidence {
                file: "crates/gatehouse-crypto/src/aead.rs",
                tests: &[
                    "round_trip_and_header",
                    "wrong_key_or_context_fails",
                    "every_flipped_bit_fails",
                    "wrap_round_trip_and_check_values",
                    "context_is_unambiguous",
                ],
            },
            Evidence {
                file: "crates/gatehouse/src/config/tests.rs",
                tests: &[
                    "master_key_in_the_file_is_refused",
                    "production_needs_a_supplied_master_key",
                    "pkcs11_master_key_settings_are_checked_at_load",
                ],
            },
        ],
    },
    Control {
        id: "D2",
        title: "Shared credentials vault",
        built: Built::Done(None),
        promise: "Members can use a shared secret through a service without seeing it; revealing it takes a separate permission and a recent second-factor check, and is recorded.",
        self_check: "Reports who holds the master key: the server, an HSM, or operators' shares.",
        ledger: r#"Members use a shared secret through an internal service acting on their behalf without seeing it;
revealing it is a separate permission that also needs a recent second factor, and both are
audited.

The master key can be split among operators (`gatehouse keys split --shares N --threshold K`,
Shamir over GF(256) through `blahaj`); with `master_key = "shares"` the server starts sealed
(503 `sealed`) until K operators submit shares (`gatehouse unseal`, `POST /admin/v1/unseal`).
A share of another key, a duplicate, a mistyped share and fewer than K shares are each refused
with nothing changed (docs/design/keyring.md)."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/vault.rs",
                tests: &[
                    "a_member_uses_a_secret_through_a_service_without_ever_seeing_it",
                    "reveal_needs_a_recent_second_factor_is_audited_and_refused_to_a_viewer",
                    "another_organisation_cannot_use_reveal_or_list_a_secret",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/secrets.rs",
                tests: &[
                    "vault_secrets_round_trip_and_list_newest_first",
                    "vault_live_secret_names_are_unique",
                    "vault_versions_advance_one_at_a_time_until_deleted",
                    "vault_secrets_never_cross_organisations",
                ],
            },
            Evidence {
                file: "crates/gatehouse/src/shares_tests.rs",
                tests: &[
                    "shares_split_5_of_3_every_three_share_subset_rebuilds_the_key",
                    "shares_two_are_consistent_with_every_value_of_a_key_byte",
                    "shares_with_one_changed_character_are_refused_alone",
                    "shares_of_another_key_duplicated_or_too_few_are_refused",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/process/unseal.rs",
                tests: &["unseal_a_server_started_sealed_serves_503_sealed_until_the_third_share"],
            },
        ],
    },
    Control {
        id: "D3",
        title: "Encrypted backups",
        built: Built::Done(None),
        promise: "Backups are encrypted, checked for tampering and completeness before anything is restored, and restored with the audit log verified.",
        self_check: "Warns when no backup recipient or passphrase is configured.",
        ledger: r#"`gatehouse backup create --out FILE` takes a consistent online snapshot (SQLite's WAL read
snapshot; PostgreSQL's repeatable read on the owning role) and writes every table as an
age-encrypted, chunk-authenticated archive to `[backup]`'s X25519 recipients or passphrase, with a
manifest: format and schema versions, rows and SHA-256 per table, every audit chain's head and the
newest signed checkpoint. `backup verify` decrypts and checks every digest without restoring;
`backup restore` checks the whole archive and the master key first, restores into an empty
database of either backend in one transaction, and verifies the audit chains. Design and the exact
refusals: docs/design/backups.md.

The restore drill (`restore_drill_every_row_back_on_the_same_and_the_other_backend`) backs up a
deployment with every kind of row while requests are served and restores it on the same backend and,
in the PostgreSQL suite, PostgreSQL to SQLite and SQLite to PostgreSQL: every table equals the
archive as `age -d` decrypts it, `audit verify --expect-checkpoint` passes with the archive's newest
checkpoint, sealed values open and a pre-backup token verifies. The format's unit tests cover
digests, cuts, hostile names and table order. Figures (100,000 records on SQLite, and verify's p99
beside a running backup) are in docs/BENCHMARKS.md."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/backup.rs",
                tests: &[
                    "restore_drill_every_row_back_on_the_same_and_the_other_backend",
                    "changed_bytes_other_recipients_and_unfit_targets_are_refused_with_nothing_changed",
                ],
            },
            Evidence {
                file: "crates/gatehouse-core/src/backup/tests.rs",
                tests: &[
                    "what_is_written_reads_back_with_the_same_manifest",
                    "a_changed_value_a_cut_and_a_trailer_are_each_refused",
                    "another_format_version_is_refused_with_a_sentence",
                    "a_hostile_table_name_never_reaches_sql",
                    "parents_come_before_children_and_ties_go_by_name",
                    "a_seal_reads_back_and_a_second_pass_refuses_another_manifest",
                    "the_header_is_in_the_digest",
                ],
            },
        ],
    },
    Control {
        id: "D4",
        title: "Transport security",
        built: Built::Done(None),
        promise: "Connections are encrypted with TLS 1.3 by default (TLS 1.2 with strong ciphers only if enabled, nothing older), and browsers are told to use HTTPS only.",
        self_check: "With `[tls]`, reads the expiry of the certificate in force (warns within 14 days, fails once expired). Without it: passes when `trusted_proxy_tls` declares a proxy that terminates TLS, warns on loopback, and beyond loopback warns in development and fails in production.",
        ledger: r#"TLS 1.3 by default, 1.2 (ECDHE with AEAD suites only) when asked for, nothing older; HSTS for a
year with subdomains on every response; plain HTTP off loopback in production only with
`trusted_proxy_tls`.

An independent scan (testssl.sh), run by hand, is in docs/SECURITY.md."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/tls.rs",
                tests: &[
                    "default_refuses_tls12_and_accepts_tls13",
                    "min_version_12_accepts_tls12_with_ecdhe_aead_suites_only",
                    "https_responses_carry_hsts_and_the_clients_address_reaches_the_limiter",
                    "sighup_serves_a_replaced_certificate_without_restart",
                    "a_changed_certificate_file_is_picked_up_without_a_signal",
                    "a_bad_replacement_is_refused_and_the_old_certificate_stays",
                    "dev_cert_writes_a_ca_whose_chain_verifies_and_prints_the_tls_lines",
                ],
            },
            Evidence {
                file: "crates/gatehouse/src/tls.rs",
                tests: &[
                    "tls12_suites_are_ecdhe_with_aead_only",
                    "builds_at_either_minimum_with_http11_alpn_and_no_early_data",
                ],
            },
            Evidence {
                file: "crates/gatehouse/src/config/tests.rs",
                tests: &["production_refuses_plain_http_off_loopback_unless_behind_a_tls_proxy"],
            },
        ],
    },
    Control {
        id: "D5",
        title: "Secrets in memory and logs",
        built: Built::Done(None),
        promise: "Secret values are wiped from memory after use and never written to logs.",
        self_check: "At start, searches the `config check` printout and its debug form for the service secrets, the pepper and the master key (base64 and hex), the PKCS#11 PIN, the SMTP password and the passwords in the database, migration and Redis URLs (values under 4 characters skipped), in buffers zeroed afterwards; reports the result.",
        ledger: r#"Secret values live in types that zero their memory on drop and never print; a test plants secrets
and finds none of them in any log line."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/secrets_in_logs.rs",
                tests: &["no_log_line_contains_a_planted_secret"],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/mfa.rs",
                tests: &["no_log_line_holds_a_second_factor_secret_a_one_time_token_or_a_password"],
            },
            Evidence {
                file: "crates/gatehouse-crypto/src/secret.rs",
                tests: &["debug_never_shows_the_value"],
            },
            Evidence {
                file: "crates/gatehouse-http/src/json.rs",
                tests: &["values_are_never_echoed"],
            },
            Evidence {
                file: "crates/gatehouse-core/src/mail/mod.rs",
                tests: &["a_message_never_prints_its_body"],
            },
            Evidence {
                file: "crates/gatehouse/src/config/tests.rs",
                tests: &["redacted_output_hides_secrets"],
            },
        ],
    },
];
