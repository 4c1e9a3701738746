//! Family F of the catalogue (see `super`).

use super::{Built, Control, Evidence};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "F1",
        title: "Share links",
        built: Built::Done(Some("expired links are not pruned yet: G3")),
        promise: "A share link shows one record, read-only, to people without an account; it can carry a password, an expiry and a view limit, and revoking it stops access at once.",
        self_check: "Reports share links' maximum lifetime and viewer pass lifetime.",
        ledger: r#"`POST /v1/records/{id}/share-links {password?, expires_at, max_views?}` by whoever may change the
record: a 256-bit token (`gsl_...`) shown once and stored as a SHA-256 digest, an expiry no
further than `share.max_ttl_days` (30), an optional Argon2id password on the hashing pool, an
optional bound on opens. `POST /v1/share/{token} {password?}` needs no account: wrong passwords
go through the sign-in lockouts (per link and address, per link, per address; growing delays),
each open of a link with a view bound is counted in one statement (no two opens take the last
view) and gives a viewer pass
(`gsv_...`, 15 minutes by default, never past the link) for `GET /v1/share/record`: that record,
read-only. The pass is not stored: an HMAC under the keyring's link key over organisation, link,
password generation and expiry; every request with it reads the link's row, so revoking the link
or changing its password ends every pass on its next request, on every instance, with nothing to
fan out. Opens, failures (with a reason) and revocations are on the organisation's chain
(`share_link.opened`, `share_link.open_failed`, `share_link.revoked`, `record.shared`,
`share_link.password_changed`). A deleted record takes its links with it.

A link with neither password nor view bound opens from memory after its first open on an
instance (`crates/gatehouse-core/src/product/share_opens.rs`): its row kept 5 s by token digest
and forgotten on revocation, password change and record deletion; opens counted per link and
written by the 30-second flush (view count, one aggregated `share_link.opened` event per link).
A stale row can only issue a pass that its first use refuses.

`a_password_change_ends_viewers_on_another_instance_and_expiry_and_views_end_links` runs two
instances over one store with the injected clock.
`opens_served_from_memory_are_counted_by_the_flush_and_end_with_the_link` makes five opens, one
written at once and four by the flush; revocation on the same instance refuses the next open at
once; the other instance's pass is refused at use, its opens end after 5 s.

Outside this control, not built yet: expired links are never pruned (G3); aggregated opens
carry no request id or address."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/share_links.rs",
                tests: &[
                    "a_password_locks_out_with_growing_delays_and_a_revoked_link_ends_its_viewers",
                    "a_password_change_ends_viewers_on_another_instance_and_expiry_and_views_end_links",
                    "bad_input_is_refused_and_nothing_is_stored",
                    "opens_served_from_memory_are_counted_by_the_flush_and_end_with_the_link",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/share_links.rs",
                tests: &[
                    "share_links_count_views_change_generation_and_stay_in_their_organisation",
                ],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/keyring.rs",
                tests: &["keyring_link_keys_rotate_with_an_overlap_and_survive_a_master_rotation"],
            },
        ],
    },
    Control {
        id: "F2",
        title: "Signed unsubscribe",
        built: Built::Done(Some("one-click needs `[mail.dkim]`, off by default")),
        promise: "Every email sent to a mailing list carries a signed one-click unsubscribe link, and once you use it no more mail from that list is sent to you.",
        self_check: "Warns when outgoing mail is not DKIM-signed (receivers then offer no one-click unsubscribe).",
        ledger: r#"The product sends its own mail through Gatehouse's outbox (`POST /internal/v1/messages`, raw
bodies or `[[mail.templates]]`), to one recipient on one of the organisation's lists. Each
message carries `List-Unsubscribe: <{mail.public_url}/v1/unsubscribe?o=&r=&l=&k=&sig=>` and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058) and a visible link. The link names
the organisation, the recipient by the SHA-256 of the address (not the address itself, though anyone holding a
candidate address can compute and compare it) and the list,
under an HMAC from the keyring's link keys: no row per link; `gatehouse keys rotate-link-key`
adds a key and older ones verify for `keyring.link_key_overlap_days` (30). `GET` shows a page
with one button (no script, no style, the edge's `default-src 'none'`); `POST` opts out at once.
The opt-out list is consulted when a message is queued (it is then not queued:
`"status": "suppressed"`) and again just before each send (a message queued before the opt-out
is skipped, its body erased, counted in `gatehouse_mail_deliveries_total{outcome="skipped"}`).
Gatehouse's own security mail (resets, verification) has no list and is never suppressed.

In `one_click_opts_out_and_a_message_queued_before_is_skipped_while_others_arrive`, aiosmtpd
receives Bob's message and nothing more for Alice; one changed byte in the signature, the recipient
or the organisation is refused; the RFC 8058 headers are checked in the raw message.

With `[mail.dkim]` configured every message is DKIM-signed and the signature covers both
headers (F4), as RFC 8058 asks before receivers offer one-click."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/unsubscribe.rs",
                tests: &[
                    "one_click_opts_out_and_a_message_queued_before_is_skipped_while_others_arrive",
                    "bad_messages_are_refused_and_nothing_is_queued",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/mail_domains.rs",
                tests: &[
                    "mail_sent_over_smtp_verifies_with_dkimpy_and_covers_the_unsubscribe_headers",
                ],
            },
        ],
    },
    Control {
        id: "F3",
        title: "Signed webhooks",
        built: Built::Done(Some(
            "delivered rows are not pruned yet: G3; no per-endpoint fairness",
        )),
        promise: "Webhook notifications are signed so receivers can check where they came from, retried for about a day, and never sent to private or internal network addresses.",
        self_check: "Warns when development settings allow plain-HTTP or loopback receivers; reports the signature scheme, polling and retry waits.",
        ledger: r#"Endpoints per organisation (`webhooks.manage`): an https URL (http and loopback only where
development allows), event types from Gatehouse's own list (`user.signed_in`,
`session.revoked`, `member.added`, `member.removed`, `api_key.created`, `api_key.revoked`,
`record.shared`, `grant.created`, `grant.revoked`, `erasure.completed`,
`webhook.endpoint_disabled`, `connector.needs_reauth`, `sso.domain_unverified`) or the product's declared ones, a `whsec_` secret shown once and
sealed under the organisation's data key, rotated with an overlap during which both secrets sign.
Gatehouse's events are queued by the audit append of the change they report, in its
transaction; the product's by `POST /internal/v1/events` (1 to 1,000, all or none). Each
delivery is a row leased by one worker at a time across instances (`FOR UPDATE SKIP LOCKED`; the
lease covers a whole pass, and an outcome is written only under the lease it was attempted
with, so a worker whose lease ran out cannot overwrite a newer one),
signed per attempt with `webhook-id`, `webhook-timestamp`, `webhook-signature`, retried with
exponential backoff and ±20 % jitter over about 25 hours, then given up; every attempt is in the
delivery log (status, latency, the first 512 bytes of the answer); a delivery can be replayed; an
endpoint with no successful attempt for `webhooks.disable_after_hours` (20) is disabled at its
next failed attempt, with a
`webhook.endpoint_disabled` event and a mail to the owners and admins. Outbound requests resolve
names with hickory and check every address before connecting (loopback, private, link-local and
the metadata address, CGNAT, unspecified, multicast, documentation, reserved, and IPv6 forms that
embed them), at creation and at every attempt; no redirect is followed and no proxy is used.

In the tests, standardwebhooks 1.3.0 for Python and for JavaScript on Node verify every request,
rotation's two signatures included; a dnslib server answers public-looking names with 10.0.0.1,
169.254.169.254 and ::1, refused at creation, and rebinds four names created public to 127.0.0.1,
10.0.0.1, 169.254.169.254 and ::1, each refused at delivery. The store case shows one claim per
lease, a stale lease's outcome not applied, and organisations apart.

Enqueue measured 29,615 to 36,530 events/s with multi-row inserts (docs/BENCHMARKS.md).
Outside this control, not built yet: delivered messages, deliveries and the attempt log are
never pruned (G3); one organisation's slow receivers can take every slot of a pass (no
per-endpoint share)."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/webhooks.rs",
                tests: &[
                    "official_libraries_verify_and_a_failing_receiver_gets_it_later_exactly_once",
                    "forbidden_destinations_are_refused_at_creation_and_at_delivery",
                    "a_receiver_down_past_the_disable_period_gets_its_endpoint_disabled",
                ],
            },
            Evidence {
                file: "crates/gatehouse/tests/it/process/webhooks.rs",
                tests: &["events_queued_before_a_kill_9_are_delivered_after_the_restart"],
            },
            Evidence {
                file: "crates/gatehouse-store-tests/src/cases/webhooks.rs",
                tests: &["webhooks_lease_deliveries_once_and_stay_in_their_organisation"],
            },
            Evidence {
                file: "crates/gatehouse-core/src/webhooks/destination.rs",
                tests: &["the_named_addresses_are_refused_and_public_ones_pass"],
            },
            Evidence {
                file: "crates/gatehouse-core/src/webhooks/sign.rs",
                tests: &["the_specification_example_signs_alike"],
            },
        ],
    },
    Control {
        id: "F4",
        title: "Sender domain check",
        built: Built::Done(None),
        promise: "Operators can check that a sending domain's SPF, DKIM and DMARC records are right, and outgoing mail can be DKIM-signed.",
        self_check: "Reports the DNS servers the domain check asks.",
        ledger: r#"`GET /v1/mail/domains/{domain}/check` (`mail.check_domain`) and `gatehouse mail check-domain
DOMAIN [--json]` read a domain's TXT records through hickory (the system's resolvers, or
`mail.domain_check.dns_servers`, over UDP; hickory keeps no cache of its own, though the
resolvers it asks may; at most 16 lookups and 12 s per check, four checks at once per instance,
the sign-in quota class; special-use and private names refused, as targets too) and give each
of SPF, DKIM and DMARC a verdict (`pass`, `warn`, `fail`) and a sentence saying what to change.
SPF fails unless there is exactly one record, it parses, every `mail.domain_check.spf_include`
is reached through `+include:`s or `redirect=` only, at any depth, before the `all` (names
compared in lower case without a trailing dot; only the first missing one is named), it ends
with `-all` or `~all` (both pass;
following `redirect=` when there is no `all`), at most RFC 7208's 10 DNS-querying terms are
counted through every include (a redirect beside an `all` counts none), and no include loops or
lacks a record. DKIM, at `{selector}._domainkey.{domain}` (`mail.domain_check.dkim_selector`,
else `mail.dkim.selector`): fails when there is no key, it is revoked (empty `p=`), not RSA of
2048 to 8192 bits (aws-lc parses it), or, at the signing domain and selector, not the key
Gatehouse signs with (a non-RSA key there fails too); warns for a non-RSA key at another
selector, testing mode (`t=y`), or no selector configured (not checked). DMARC fails without exactly one parseable record with `p=` quarantine or reject,
valid `adkim`/`aspf`, or with `adkim=s` on a subdomain of the signing domain; warns for
`p=none`, no `rua=`, or `pct` below 100. A failed lookup (SERVFAIL, timeout) fails its check. A
name that is not a domain (over 253 characters, a label over 63, no dot, characters outside LDH)
is a 422 before any query.

Outgoing mail is DKIM-signed when `[mail.dkim]` names a key (PKCS#8 PEM, 2048 to 4096 bits, mode
0600; a signing domain that is not the From domain or a parent of it is refused at load):
`rsa-sha256` (aws-lc), relaxed/relaxed canonicalisation computed over the bytes lettre formats,
every signed header (From, Sender, Reply-To, To, Cc, Subject, Date, Message-ID, In-Reply-To,
References, the MIME headers, both List-Unsubscribe headers) listed once more than it occurs.
`gatehouse mail dkim-record` prints the TXT record to publish, as zone-file text split into
255-byte strings. Signing is off until `[mail.dkim]` is set: with the SMTP transport and no key,
`serve` logs a warning at start.

In `each_record_gets_the_right_verdict_and_bad_names_make_no_query` a dnslib server serves good,
missing, +all, two-record, no-include, eleven-include, 1024-bit, malformed, revoked and swapped
keys, p=none, no rua and no p; bad names and a member without the permission make no query. In
`mail_sent_over_smtp_verifies_with_dkimpy_and_covers_the_unsubscribe_headers` aiosmtpd receives the
sign-up mail and a product message; dkimpy 1.1.8 verifies both; one changed byte does not verify.
Canonicalisation is tested on RFC 6376's example (section 3.4.5); the record parsers have a property
test that they never panic, and the fuzz target `inputs`.

Not checked: the organisational domain's DMARC record when a subdomain has none (that needs the
public suffix list), DNSSEC, MX and MTA-STS."#,
        evidence: &[
            Evidence {
                file: "crates/gatehouse/tests/it/mail_domains.rs",
                tests: &[
                    "each_record_gets_the_right_verdict_and_bad_names_make_no_query",
                    "the_cli_prints_the_verdicts_and_exits_non_zero_on_a_failing_domain",
                    "mail_sent_over_smtp_verifies_with_dkimpy_and_covers_the_unsubscribe_headers",
                    "unsafe_dkim_and_check_settings_are_refused_at_load",
                ],
            },
            Evidence {
                file: "crates/gatehouse-infra/src/dkim.rs",
                tests: &["the_rfc_example_canonicalises_as_the_rfc_says"],
            },
            Evidence {
                file: "crates/gatehouse-core/src/mail/dns_records.rs",
                tests: &[
                    "spf_terms_are_read_with_their_qualifiers_and_values",
                    "tag_lists_refuse_duplicates_and_bare_words",
                    "domain_names_are_bounded_and_lower_cased",
                    "the_parsers_never_panic_and_accepted_names_are_canonical",
                ],
            },
            Evidence {
                file: "crates/gatehouse-crypto/src/rsa_sign.rs",
                tests: &[
                    "a_signature_verifies_under_the_published_key_and_not_over_other_bytes",
                    "published_keys_are_sized_in_both_der_forms_and_garbage_is_malformed",
                ],
            },
        ],
    },
];
