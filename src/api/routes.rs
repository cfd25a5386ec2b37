//! The route table: every method and path the API answers, as data. The
//! router (`Api::route`, `Api::screen`, `admin::route`) looks requests up
//! here, the `Allow` header of a 405 is read from here, and the OpenAPI
//! document is checked against it (`openapi::tests`), so a route cannot be
//! added without the document knowing.

use super::ApiError;
use crate::metrics::Endpoint;

/// What a request is, once its method and path matched a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Ping,
    Post,
    Direct,
    LeadGet,
    Health,
    Ready,
    Metrics,
    OpenApi,
    /// The dashboard's static page, script and style (`api::dashboard`).
    Dashboard,
    DashboardScript,
    DashboardStyle,
    AdminStats,
    AdminDashboard,
    AdminReload,
    AdminResealStart,
    AdminResealStatus,
    AdminLead,
    /// `POST /v1/admin/leads/{lead_id}/return` (contract §13).
    AdminReturn,
    AdminTransactions,
    AdminExport,
    AdminSuppressionsAdd,
    AdminSuppressionsRemove,
}

/// One row of the table. `path` segments in braces (`{lead_id}`) match
/// one non-empty segment.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub method: &'static str,
    pub path: &'static str,
    pub route: Route,
    /// Whether the route reads a (JSON) request body; every other route
    /// refuses one on the head, unread.
    pub takes_body: bool,
}

const fn e(method: &'static str, path: &'static str, route: Route, takes_body: bool) -> Entry {
    Entry {
        method,
        path,
        route,
        takes_body,
    }
}

/// Every route: the publisher API (contract §4), operations (§7), admin
/// (§7, §12) and this API's own description (§13).
pub const ROUTES: &[Entry] = &[
    e("POST", "/v1/ping", Route::Ping, true),
    e("POST", "/v1/post", Route::Post, true),
    e("POST", "/v1/leads", Route::Direct, true),
    e("GET", "/v1/leads/{lead_id}", Route::LeadGet, false),
    e("GET", "/healthz", Route::Health, false),
    e("GET", "/readyz", Route::Ready, false),
    e("GET", "/metrics", Route::Metrics, false),
    e("GET", "/openapi.json", Route::OpenApi, false),
    e("GET", "/dashboard", Route::Dashboard, false),
    e("GET", "/dashboard.js", Route::DashboardScript, false),
    e("GET", "/dashboard.css", Route::DashboardStyle, false),
    e("GET", "/v1/admin/stats", Route::AdminStats, false),
    e("GET", "/v1/admin/dashboard", Route::AdminDashboard, false),
    e("POST", "/v1/admin/reload", Route::AdminReload, false),
    e("POST", "/v1/admin/reseal", Route::AdminResealStart, false),
    e("GET", "/v1/admin/reseal", Route::AdminResealStatus, false),
    e("GET", "/v1/admin/leads/{lead_id}", Route::AdminLead, false),
    e(
        "POST",
        "/v1/admin/leads/{lead_id}/return",
        Route::AdminReturn,
        true,
    ),
    e(
        "GET",
        "/v1/admin/transactions",
        Route::AdminTransactions,
        false,
    ),
    e("GET", "/v1/admin/leads", Route::AdminExport, false),
    e(
        "POST",
        "/v1/admin/suppressions",
        Route::AdminSuppressionsAdd,
        true,
    ),
    e(
        "DELETE",
        "/v1/admin/suppressions",
        Route::AdminSuppressionsRemove,
        true,
    ),
];

impl Route {
    /// The `endpoint` label of its metrics.
    pub fn endpoint(self) -> Endpoint {
        match self {
            Route::Ping => Endpoint::Ping,
            Route::Post => Endpoint::Post,
            Route::Direct => Endpoint::Leads,
            Route::LeadGet => Endpoint::LeadGet,
            Route::Health => Endpoint::Health,
            Route::Ready => Endpoint::Ready,
            Route::Metrics => Endpoint::Metrics,
            Route::OpenApi => Endpoint::OpenApi,
            Route::Dashboard | Route::DashboardScript | Route::DashboardStyle => {
                Endpoint::Dashboard
            }
            _ => Endpoint::Admin,
        }
    }

    /// A call made with a publisher's key (drain and store checks apply).
    pub fn is_publisher_call(self) -> bool {
        matches!(
            self,
            Route::Ping | Route::Post | Route::Direct | Route::LeadGet
        )
    }
}

/// Whether `path` (no query) matches the template `pattern`; the text of
/// its one `{…}` segment, if it has one.
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Option<&'p str>> {
    let mut param = None;
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(param),
            (Some(w), Some(h)) if w.starts_with('{') && !h.is_empty() => param = Some(h),
            (Some(w), Some(h)) if w == h => {}
            _ => return None,
        }
    }
}

/// The entries whose path matches `path`, whatever their method.
fn entries_for(path: &str) -> impl Iterator<Item = (&'static Entry, Option<&str>)> + '_ {
    ROUTES
        .iter()
        .filter_map(move |e| matches(e.path, path).map(|p| (e, p)))
}

/// The route `method` `path` names, and its path parameter: 404 for a path
/// no route has, 405 for a known path with another method.
pub fn find<'p>(
    method: &str,
    path: &'p str,
) -> Result<(&'static Entry, Option<&'p str>), ApiError> {
    let mut known = false;
    for (entry, param) in entries_for(path) {
        if entry.method == method {
            return Ok((entry, param));
        }
        known = true;
    }
    if known {
        Err(ApiError::method_not_allowed())
    } else {
        Err(ApiError::not_found())
    }
}

/// The metrics label of a request to `path`: its route's, `admin` for any
/// other admin path (those are answered after the admin token check),
/// `other` for the rest.
pub fn endpoint_of(path: &str) -> Endpoint {
    match entries_for(path).next() {
        Some((e, _)) => e.route.endpoint(),
        None if path.starts_with("/v1/admin/") => Endpoint::Admin,
        None => Endpoint::Other,
    }
}

/// The `Allow` value for `path` (RFC 9110 §15.5.6: a 405 names the
/// methods the resource takes), `None` for a path no route has.
pub fn allow(path: &str) -> Option<String> {
    let methods: Vec<&str> = entries_for(path).map(|(e, _)| e.method).collect();
    (!methods.is_empty()).then(|| methods.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_templates_segment_by_segment() {
        assert_eq!(
            matches("/v1/leads/{id}", "/v1/leads/abc"),
            Some(Some("abc"))
        );
        assert_eq!(matches("/v1/leads/{id}", "/v1/leads/"), None);
        assert_eq!(matches("/v1/leads/{id}", "/v1/leads/a/b"), None);
        assert_eq!(matches("/v1/leads", "/v1/leads"), Some(None));
        assert_eq!(matches("/v1/leads", "/v1/leads/"), None);
        assert_eq!(matches("/healthz", "/healthzz"), None);
    }

    #[test]
    fn find_tells_unknown_paths_from_wrong_methods() {
        let (e, id) = find("GET", "/v1/admin/leads/0123").unwrap();
        assert_eq!((e.route, id), (Route::AdminLead, Some("0123")));
        assert_eq!(
            find("GET", "/v1/admin/leads").unwrap().0.route,
            Route::AdminExport
        );
        assert_eq!(find("PUT", "/v1/ping").unwrap_err().status, 405);
        assert_eq!(find("GET", "/v1/pong").unwrap_err().status, 404);
        assert_eq!(
            allow("/v1/admin/suppressions").as_deref(),
            Some("POST, DELETE")
        );
        assert_eq!(allow("/nope"), None);
        assert_eq!(endpoint_of("/v1/admin/nope"), Endpoint::Admin);
        assert_eq!(endpoint_of("/openapi.json"), Endpoint::OpenApi);
    }

    #[test]
    fn every_method_and_path_is_in_the_table_once() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
                assert_ne!(a.route, b.route, "{} {}", a.method, a.path);
            }
        }
    }
}
