//! The controls catalogue (`../shared/CONTROLS.md`'s A1 ... H3) as data: for each control, what
//! the code has built of it, the promise in plain language, what its live self-check does, the
//! ledger's account, and the tests that show it. `docs/CONTROLS.md` is rendered from this
//! (`markdown`), the posture report and the trust page read it: one source, so they agree.

mod a;
mod b;
mod c;
mod d;
mod e;
mod f;
mod g;
mod h;

/// How far the code has got with a control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Built {
    /// Every part the catalogue asks for is enforced and shown by a test; the note, if any,
    /// says what lies just outside it.
    Done(Option<&'static str>),
    /// Some parts are enforced and tested; the text says which are missing.
    Partial(&'static str),
    /// Nothing implements it yet (a reserved name does not count).
    NotBuilt,
}

impl Built {
    /// `done`, `partial` or `not_built`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done(_) => "done",
            Self::Partial(_) => "partial",
            Self::NotBuilt => "not_built",
        }
    }

    #[must_use]
    pub fn note(self) -> Option<&'static str> {
        match self {
            Self::Done(n) => n,
            Self::Partial(n) => Some(n),
            Self::NotBuilt => None,
        }
    }

    #[must_use]
    pub fn is_built(self) -> bool {
        !matches!(self, Self::NotBuilt)
    }
}

/// Tests in one file that show a control.
#[derive(Debug, Clone, Copy)]
pub struct Evidence {
    /// From the repository root.
    pub file: &'static str,
    /// Test function names in that file.
    pub tests: &'static [&'static str],
}

/// One control of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Control {
    pub id: &'static str,
    pub title: &'static str,
    pub built: Built,
    /// One sentence for a reader of the trust page: what the control promises them.
    pub promise: &'static str,
    /// What the live self-check does, in one or two sentences.
    pub self_check: &'static str,
    /// The ledger's account of what the code does (markdown).
    pub ledger: &'static str,
    pub evidence: &'static [Evidence],
}

/// A family of controls (`A. Identity and sessions`).
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub letter: char,
    pub name: &'static str,
    pub controls: &'static [Control],
}

/// The catalogue's families, in order.
pub static FAMILIES: [Family; 8] = [
    Family {
        letter: 'A',
        name: "Identity and sessions",
        controls: a::CONTROLS,
    },
    Family {
        letter: 'B',
        name: "Machine identity",
        controls: b::CONTROLS,
    },
    Family {
        letter: 'C',
        name: "Authorization and isolation",
        controls: c::CONTROLS,
    },
    Family {
        letter: 'D',
        name: "Data protection",
        controls: d::CONTROLS,
    },
    Family {
        letter: 'E',
        name: "Accountability and operations",
        controls: e::CONTROLS,
    },
    Family {
        letter: 'F',
        name: "Links and messaging",
        controls: f::CONTROLS,
    },
    Family {
        letter: 'G',
        name: "Privacy",
        controls: g::CONTROLS,
    },
    Family {
        letter: 'H',
        name: "Browser surface and disclosure",
        controls: h::CONTROLS,
    },
];

/// Every control, in catalogue order.
pub fn all() -> impl Iterator<Item = &'static Control> {
    FAMILIES.iter().flat_map(|f| f.controls.iter())
}

/// The control with this id.
#[must_use]
pub fn find(id: &str) -> Option<&'static Control> {
    all().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_follow_their_family() {
        let mut seen = std::collections::BTreeSet::new();
        for f in &FAMILIES {
            for c in f.controls {
                assert!(seen.insert(c.id), "{} appears twice", c.id);
                assert!(
                    c.id.starts_with(f.letter),
                    "{} is filed under {}",
                    c.id,
                    f.letter
                );
            }
        }
        assert_eq!(seen.len(), 39, "the catalogue has 39 controls");
    }
}
