//! The data subject's rights (G1, G2): an export of everything Gatehouse stores about a person or
//! an organisation, and (in `erase`) its hard erasure.

mod erase;
mod export;
mod rows;

pub use erase::{MAX_RECORD_IDS, OrganizationErasure, Reach, RecordSelection, UserErasure};
pub use export::{Export, ExportSubject, FORMAT, Position, VERSION};

use crate::kernel::{Kernel, service_handle};

/// Export and erasure (`Kernel::data_rights`).
#[derive(Debug, Clone, Copy)]
pub struct DataRights<'k>(pub(crate) &'k Kernel);
service_handle!(DataRights);
