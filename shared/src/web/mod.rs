//! The end-user web pages (issue 15, docs/web-pages.md): the pieces every page shares so
//! far: the `__Host-` cookies of the web session, the CSRF and origin guards, the
//! checked `return_to`, and the headers every page carries. The pages themselves call
//! the flows in-process and are built on these.

pub mod cookies;
pub mod guard;
pub mod headers;
