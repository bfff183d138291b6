//! One module per area of the portal; each contributes its routes.

use axum::Router;

use crate::AppState;

pub mod account;
pub mod admin;
pub mod auth;
pub mod dashboard;
pub mod experiments;
pub mod organizations;
pub mod projects;
pub mod realizations;
pub mod util;
pub mod xdcs;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(auth::routes())
        .merge(dashboard::routes())
        .merge(projects::routes())
        .merge(organizations::routes())
        .merge(experiments::routes())
        .merge(realizations::routes())
        .merge(xdcs::routes())
        .merge(account::routes())
        .merge(admin::routes())
}
