//! Where a request goes, decided from its host and path alone, before the portal is asked.
//!
//! Forms, for `domain = xdc.example.net`:
//! - path form (canonical), on the domain or any host that is not the host form:
//!   `/<project>/<xdc>/...`, forwarded unchanged (Jupyter's `base_url` is `/<project>/<xdc>/`);
//! - seed form `/<project>/<experiment>/<xdc>/...`: resolved like the path form first; only
//!   when the second segment is no XDC does the third get a try (see [`Seed`]);
//! - Merge v1 host form `<xdc>-<project>.xdc.example.net/jupyter/...`: redirected to the
//!   canonical path on the same host, where only that XDC's paths are served.

use trellis_types::validate_name;

/// The proxy's own pages live under this prefix, which no project name can take (names start
/// with a letter).
pub(crate) const LOGIN_PATH: &str = "/_trellis/login";
pub(crate) const LOGOUT_PATH: &str = "/_trellis/logout";

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Login,
    Logout,
    /// To another path on the same host (query kept), without asking anyone.
    Redirect(String),
    Xdc {
        project: &'a str,
        xdc: &'a str,
        seed: Option<Seed<'a>>,
    },
    NotFound,
}

/// The seed form's alternative reading of a path: `/<project>/<experiment>/<xdc><rest>`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Seed<'a> {
    pub(crate) xdc: &'a str,
    /// What follows the XDC segment: empty or starting with `/`.
    pub(crate) rest: &'a str,
}

impl Seed<'_> {
    /// The canonical path this seed-form request is redirected to.
    pub(crate) fn location(&self, project: &str, query: Option<&str>) -> String {
        let rest = if self.rest.is_empty() { "/" } else { self.rest };
        with_query(format!("/{project}/{}{rest}", self.xdc), query)
    }
}

/// The XDC and project a Merge host-form host names (`<xdc>-<project>.<domain>`). Names have
/// no `-`, so the last one separates them.
pub(crate) fn host_form<'h>(host: &'h str, domain: &str) -> Option<(&'h str, &'h str)> {
    let label = host.strip_suffix(domain)?.strip_suffix('.')?;
    let (xdc, project) = label.rsplit_once('-')?;
    (is_name(xdc) && is_name(project)).then_some((xdc, project))
}

/// Routes a request; `site` is the host form's `(xdc, project)` when the host is one.
pub(crate) fn route<'a>(site: Option<(&str, &str)>, path: &'a str, query: Option<&str>) -> Route<'a> {
    match path {
        LOGIN_PATH => return Route::Login,
        LOGOUT_PATH => return Route::Logout,
        _ => {}
    }
    if let Some((xdc, project)) = site {
        let jupyter = if path == "/" { Some("") } else { strip_segment(path, "/jupyter") };
        if let Some(rest) = jupyter {
            let rest = rest.strip_prefix('/').unwrap_or(rest);
            return Route::Redirect(with_query(format!("/{project}/{xdc}/{rest}"), query));
        }
    }
    let Some((project, after)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return Route::NotFound;
    };
    let (xdc, rest) = match after.split_once('/') {
        Some((xdc, rest)) => (xdc, rest),
        None if is_name(project) && is_name(after) => {
            // `/<project>/<xdc>` without the slash Jupyter's base URL ends with.
            return Route::Redirect(with_query(format!("/{project}/{after}/"), query));
        }
        None => return Route::NotFound,
    };
    if !(is_name(project) && is_name(xdc)) {
        return Route::NotFound;
    }
    if let Some((host_xdc, host_project)) = site {
        // A host-form host serves its own XDC only, so its origin stays that XDC's.
        if (host_xdc, host_project) != (xdc, project) {
            return Route::NotFound;
        }
        return Route::Xdc { project, xdc, seed: None };
    }
    let (third, rest) = match rest.find('/') {
        Some(end) => rest.split_at(end),
        None => (rest, ""),
    };
    let seed = is_name(third).then_some(Seed { xdc: third, rest });
    Route::Xdc { project, xdc, seed }
}

/// `path` without the leading segment `prefix`, if it starts with exactly that segment.
fn strip_segment<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn with_query(mut path: String, query: Option<&str>) -> String {
    if let Some(query) = query {
        path.push('?');
        path.push_str(query);
    }
    path
}

fn is_name(value: &str) -> bool {
    validate_name("name", value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "xdc.example.net";

    fn xdc<'a>(project: &'a str, xdc: &'a str, seed: Option<(&'a str, &'a str)>) -> Route<'a> {
        Route::Xdc { project, xdc, seed: seed.map(|(xdc, rest)| Seed { xdc, rest }) }
    }

    #[test]
    fn path_form_and_seed_candidates() {
        assert_eq!(route(None, "/proj/x0/", None), xdc("proj", "x0", None));
        assert_eq!(route(None, "/proj/x0/tree", None), xdc("proj", "x0", Some(("tree", ""))));
        assert_eq!(
            route(None, "/proj/exp/x0/api/status", None),
            xdc("proj", "exp", Some(("x0", "/api/status")))
        );
        assert_eq!(route(None, "/proj/x0/api/kernels", None), xdc("proj", "x0", Some(("api", "/kernels"))));
        assert_eq!(route(None, "/proj/x0/%2e%2e/y", None), xdc("proj", "x0", None));
        assert_eq!(route(None, "/proj/x0", Some("a=1")), Route::Redirect("/proj/x0/?a=1".into()));
        assert_eq!(route(None, "/_trellis/login", None), Route::Login);
        assert_eq!(route(None, "/_trellis/logout", None), Route::Logout);
        for bad in ["/", "/proj", "/proj/", "/Proj/x0/", "/proj/x-0/", "/proj//x0/", "//x0/", "/1p/x0/"] {
            assert_eq!(route(None, bad, None), Route::NotFound, "{bad}");
        }
    }

    #[test]
    fn seed_locations_drop_the_experiment() {
        let seed = Seed { xdc: "x0", rest: "/tree/a.ipynb" };
        assert_eq!(seed.location("proj", Some("k=v")), "/proj/x0/tree/a.ipynb?k=v");
        assert_eq!(Seed { xdc: "x0", rest: "" }.location("proj", None), "/proj/x0/");
    }

    #[test]
    fn host_form_splits_at_the_last_dash() {
        assert_eq!(host_form("x0-proj.xdc.example.net", DOMAIN), Some(("x0", "proj")));
        for not in
            ["xdc.example.net", "x0proj.xdc.example.net", "a.x0-proj.xdc.example.net", "x0-proj.example.net"]
        {
            assert_eq!(host_form(not, DOMAIN), None, "{not}");
        }
        assert_eq!(host_form("x0-proj-xdc.example.net", DOMAIN), None, "no dot before the domain");
    }

    #[test]
    fn host_form_redirects_jupyter_and_serves_only_its_xdc() {
        let site = Some(("x0", "proj"));
        assert_eq!(route(site, "/jupyter", None), Route::Redirect("/proj/x0/".into()));
        assert_eq!(route(site, "/jupyter/", None), Route::Redirect("/proj/x0/".into()));
        assert_eq!(
            route(site, "/jupyter/tree/a", Some("x=1")),
            Route::Redirect("/proj/x0/tree/a?x=1".into())
        );
        assert_eq!(route(site, "/", None), Route::Redirect("/proj/x0/".into()));
        assert_eq!(route(site, "/jupyterlab", None), Route::NotFound);
        assert_eq!(route(site, "/proj/x0/api", None), xdc("proj", "x0", None));
        assert_eq!(route(site, "/proj/x1/api", None), Route::NotFound);
        assert_eq!(route(site, "/proj/exp/x0/", None), Route::NotFound);
    }
}
