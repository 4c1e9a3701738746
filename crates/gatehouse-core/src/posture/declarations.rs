//! What the operator declares about their service for the trust page: certifications, where
//! data lives, who processes it, how to reach security, the last penetration test. Shown as the
//! operator's declarations, never as facts Gatehouse verified.

use serde::{Deserialize, Serialize};

/// The operator's statements, from configuration (`[trust_page]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Declarations {
    /// The service the page is about (for example "Acme CRM").
    #[serde(default)]
    pub service_name: Option<String>,
    /// Where to report a security problem (an address or URL).
    #[serde(default)]
    pub contact: Option<String>,
    /// Certifications and attestations, each with the operator's status for it.
    #[serde(default)]
    pub certifications: Vec<Certification>,
    /// Where customer data is stored (for example "EU (Frankfurt)").
    #[serde(default)]
    pub data_residency: Option<String>,
    #[serde(default)]
    pub sub_processors: Vec<SubProcessor>,
    /// When the last penetration test ended and who ran it, as the operator states it.
    #[serde(default)]
    pub last_penetration_test: Option<String>,
}

/// A certification or attestation and the operator's status for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Certification {
    /// For example "SOC 2 Type II" or "ISO/IEC 27001".
    pub name: String,
    pub status: CertificationStatus,
    /// Optional detail (the auditor, the period, a link to the report).
    #[serde(default)]
    pub note: Option<String>,
}

/// The operator's status for a certification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificationStatus {
    /// Held, in the operator's words.
    Held,
    InProgress,
    NotClaimed,
}

impl CertificationStatus {
    /// As the trust page says it.
    #[must_use]
    pub fn as_text(self) -> &'static str {
        match self {
            Self::Held => "held (declared)",
            Self::InProgress => "in progress",
            Self::NotClaimed => "not claimed",
        }
    }
}

/// A company that processes customer data for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubProcessor {
    pub name: String,
    pub purpose: String,
    #[serde(default)]
    pub location: Option<String>,
}
