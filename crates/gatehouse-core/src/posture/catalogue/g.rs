//! Family G of the catalogue (see `super`).

use super::{Built, Control};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "G1",
        title: "Export",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "G2",
        title: "Erasure",
        built: Built::Partial("see the ledger"),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "G3",
        title: "TTL",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
];
