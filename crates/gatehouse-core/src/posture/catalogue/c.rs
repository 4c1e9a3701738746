//! Family C of the catalogue (see `super`).

use super::{Built, Control};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "C1",
        title: "Roles and action-level gating",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "C2",
        title: "Tenant isolation",
        built: Built::Partial("see the ledger"),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "C3",
        title: "Per-resource access levels",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "C4",
        title: "Cross-tenant grants",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "C5",
        title: "Rate limiting",
        built: Built::Partial("see the ledger"),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "C6",
        title: "CORS allow-list",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
];
