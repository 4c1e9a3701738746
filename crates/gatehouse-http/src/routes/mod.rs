pub(crate) mod fallback;
pub(crate) mod health;
pub(crate) mod openapi;
pub(crate) mod signup;
