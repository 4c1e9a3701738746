use std::sync::Arc;

use gatehouse_core::Kernel;

/// What handlers share: the kernel. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub kernel: Arc<Kernel>,
}

impl AppState {
    #[must_use]
    pub fn new(kernel: Arc<Kernel>) -> Self {
        Self { kernel }
    }
}
