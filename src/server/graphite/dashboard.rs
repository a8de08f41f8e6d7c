//! The dashboard at `/`: static HTML, JavaScript and CSS compiled into the
//! server, so the page needs nothing from another origin. The page asks
//! `/metrics/index.json` for names and `/render` for the charts it draws.

pub const HTML: &str = include_str!("dashboard/index.html");
pub const JS: &str = include_str!("dashboard/dashboard.js");
pub const CSS: &str = include_str!("dashboard/dashboard.css");
