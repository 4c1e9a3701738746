//! Family H of the catalogue (see `super`).

use super::{Built, Control, Evidence};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "H1",
        title: "Security headers",
        built: Built::Done(None),
        promise: "Every response carries browser security headers that forbid framing, content sniffing and caching of private data.",
        self_check: "",
        ledger: r#"Every response, errors and raw protocol errors included, carries HSTS, a strict CSP with
`frame-ancestors 'none'`, `X-Frame-Options: DENY`, nosniff, the referrer policy, a
Permissions-Policy and COOP (and CORP and `Cache-Control: no-store`, except the two public
documents, JWKS and security.txt, which keep their own cache lifetime).

Issue 18, slow clients: 1,000 unfinished headers are closed within the header timeout while others
are served; idle connections, the connection lifetime, the per-address cap and HTTP/2 prior
knowledge are tested too, and the connection tracker's unit tests cover mapped addresses and the
total cap."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/headers.rs",
                tests: &[
                    "on_200_404_405_and_413",
                    "on_raw_protocol_errors_too",
                    "public_documents_keep_their_own_cache_lifetime_and_everything_else_is_no_store",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/slow_clients.rs",
                tests: &[
                    "a_thousand_unfinished_headers_are_closed_within_the_header_timeout_while_others_are_served",
                    "an_idle_kept_alive_connection_is_closed_after_the_header_timeout",
                    "connections_beyond_the_per_address_cap_are_closed_at_once_and_others_are_served",
                    "a_connection_past_its_lifetime_finishes_its_request_and_closes",
                    "the_plain_listener_does_not_answer_http2_prior_knowledge",
                    "a_trusted_proxy_is_exempt_from_the_per_address_cap",
                ],
            },
            Evidence {
                file: "crates/gatehouse/src/conn.rs",
                tests: &[
                    "mapped_ipv4_counts_as_ipv4_and_a_proxy_is_exempt_in_either_form",
                    "the_total_cap_holds_across_addresses",
                ],
            },
        ],
    },
    Control {
        id: "H2",
        title: "security.txt",
        built: Built::Done(None),
        promise: "The service publishes how to report a security problem at the standard /.well-known/security.txt address.",
        self_check: "",
        ledger: r#"`/.well-known/security.txt` per RFC 9116 from `[security_txt]`, refused at load without a contact
or with a past expiry."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/headers.rs",
                tests: &["security_txt_serves_the_configured_fields_and_is_absent_unconfigured"],
            },
            Evidence {
                file: "crates/gatehouse/src/config/security_txt.rs",
                tests: &[
                    "renders_the_fields_in_rfc_9116_form",
                    "empty_is_off_and_bad_settings_are_refused",
                ],
            },
        ],
    },
    Control {
        id: "H3",
        title: "Posture report",
        built: Built::NotBuilt,
        promise: "A live report of which security controls are switched on and working is not available yet.",
        self_check: "",
        ledger: r#"The only posture check is PostgreSQL's row-level-security check at start
(`PostgresStore::rls_posture`); there is no report of controls."#,
        evidence: &[],
    },
];
