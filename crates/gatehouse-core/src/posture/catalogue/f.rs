//! Family F of the catalogue (see `super`).

use super::{Built, Control};

pub(super) static CONTROLS: &[Control] = &[
    Control {
        id: "F1",
        title: "Share links",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "F2",
        title: "Signed unsubscribe",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "F3",
        title: "Signed webhooks",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
    Control {
        id: "F4",
        title: "Sender domain check",
        built: Built::Done(None),
        promise: "",
        self_check: "",
        ledger: "",
        evidence: &[],
    },
];
