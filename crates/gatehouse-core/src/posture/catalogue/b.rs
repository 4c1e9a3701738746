//! Family B of the catalogue (see `super`).

use super::{Built, Control};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "B1",
        title: "API keys",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "B2",
        title: "Internal service authentication",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "B3",
        title: "OAuth 2.0 connectors",
        built: Built::NotBuilt,
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
];
