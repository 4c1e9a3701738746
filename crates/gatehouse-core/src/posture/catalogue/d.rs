//! Family D of the catalogue (see `super`).

use super::{Built, Control};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "D1",
        title: "Field encryption at rest",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "D2",
        title: "Shared credentials vault",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "D3",
        title: "Encrypted backups",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "D4",
        title: "Transport security",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "D5",
        title: "Secrets in memory and logs",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
];
