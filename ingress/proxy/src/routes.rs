//! The HTTP route table: host and path prefix → pool, compiled once per change and read
//! lock-free by every request.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::RouteConfig;
use crate::pool::Pool;

/// One compiled route.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) id: Arc<str>,
    prefix: String,
    endpoints: Vec<String>,
    pub(crate) pool: Arc<Pool>,
    /// With `strip_prefix`: the prefix without its trailing `/`, taken off forwarded paths.
    pub(crate) strip: Option<Arc<str>>,
}

impl Route {
    /// The path and query to forward for `path_and_query` (which this route matched), when
    /// the route strips its prefix: never empty, always starting with `/`.
    pub(crate) fn stripped(&self, path_and_query: &str) -> Option<String> {
        let rest = path_and_query.strip_prefix(self.strip.as_deref()?)?;
        Some(if rest.starts_with('/') { rest.to_owned() } else { format!("/{rest}") })
    }

    fn matches(&self, endpoint: &str, path: &str) -> bool {
        prefix_matches(&self.prefix, path)
            && (self.endpoints.is_empty() || self.endpoints.iter().any(|e| e == endpoint))
    }
}

/// Routes by host: exact names, then `*.parent` wildcards, then `*`; within a host the longest
/// matching path prefix wins.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    exact: HashMap<String, Vec<Route>>,
    wildcard: HashMap<String, Vec<Route>>,
    any: Vec<Route>,
}

impl RouteTable {
    /// Compiles `routes`; `pool` resolves a pool name (validation made sure each exists, and a
    /// route whose pool has vanished is left out rather than failing the whole table).
    pub(crate) fn build<'a>(
        routes: impl IntoIterator<Item = &'a RouteConfig>,
        pool: impl Fn(&str) -> Option<Arc<Pool>>,
    ) -> RouteTable {
        let mut table = RouteTable::default();
        for config in routes {
            let Some(pool) = pool(&config.pool) else {
                tracing::warn!(route = %config.id, pool = %config.pool, "route left out: its pool does not exist");
                continue;
            };
            let route = Route {
                id: config.id.as_str().into(),
                prefix: config.path_prefix.clone(),
                endpoints: config.endpoints.clone(),
                pool,
                strip: Some(config.path_prefix.trim_end_matches('/'))
                    .filter(|prefix| config.strip_prefix && !prefix.is_empty())
                    .map(Arc::from),
            };
            let list = if config.host == "*" {
                &mut table.any
            } else if let Some(parent) = config.host.strip_prefix("*.") {
                table.wildcard.entry(parent.to_owned()).or_default()
            } else {
                table.exact.entry(config.host.clone()).or_default()
            };
            list.push(route);
        }
        let longest_first = |list: &mut Vec<Route>| list.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        table.exact.values_mut().for_each(longest_first);
        table.wildcard.values_mut().for_each(longest_first);
        longest_first(&mut table.any);
        table
    }

    /// The route for a request to `host` (lowercase, without port) and `path` arriving on
    /// `endpoint`.
    pub(crate) fn lookup(&self, endpoint: &str, host: &str, path: &str) -> Option<&Route> {
        if let Some(route) = self.exact.get(host).and_then(|l| first_match(l, endpoint, path)) {
            return Some(route);
        }
        if let Some((_, parent)) = host.split_once('.')
            && let Some(route) = self.wildcard.get(parent).and_then(|l| first_match(l, endpoint, path))
        {
            return Some(route);
        }
        first_match(&self.any, endpoint, path)
    }
}

fn first_match<'a>(routes: &'a [Route], endpoint: &str, path: &str) -> Option<&'a Route> {
    routes.iter().find(|r| r.matches(endpoint, path))
}

/// `/api` matches `/api`, `/api/` and `/api/x` but not `/apix`; a prefix ending in `/` matches
/// everything below it.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EjectionConfig, PoolConfig};

    fn route(id: &str, host: &str, prefix: &str, endpoints: &[&str]) -> RouteConfig {
        RouteConfig {
            id: id.into(),
            host: host.into(),
            path_prefix: prefix.into(),
            pool: id.into(),
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            strip_prefix: false,
        }
    }

    fn table(routes: &[RouteConfig]) -> RouteTable {
        RouteTable::build(routes, |name| {
            let config = PoolConfig {
                backends: vec!["127.0.0.1:1".parse().unwrap()],
                balance: Default::default(),
                http2: false,
                health_check: None,
                ejection: EjectionConfig::default(),
                tls: None,
            };
            Some(Arc::new(Pool::new(name, config, None)))
        })
    }

    fn hit(table: &RouteTable, endpoint: &str, host: &str, path: &str) -> Option<String> {
        table.lookup(endpoint, host, path).map(|r| r.id.to_string())
    }

    #[test]
    fn exact_host_then_wildcard_then_any_with_longest_prefix() {
        let t = table(&[
            route("api", "api.example.org", "/", &[]),
            route("api-git", "api.example.org", "/git", &[]),
            route("xdc", "*.xdc.example.org", "/", &[]),
            route("fallback", "*", "/", &[]),
        ]);
        assert_eq!(hit(&t, "web", "api.example.org", "/portal.v1.Identity/Login").as_deref(), Some("api"));
        assert_eq!(hit(&t, "web", "api.example.org", "/git/p/e").as_deref(), Some("api-git"));
        assert_eq!(hit(&t, "web", "api.example.org", "/gitx").as_deref(), Some("api"));
        assert_eq!(hit(&t, "web", "jupyter.xdc.example.org", "/lab").as_deref(), Some("xdc"));
        assert_eq!(hit(&t, "web", "a.b.xdc.example.org", "/").as_deref(), Some("fallback"));
        assert_eq!(hit(&t, "web", "other.org", "/").as_deref(), Some("fallback"));
    }

    #[test]
    fn endpoint_restrictions_and_misses() {
        let t = table(&[
            route("internal", "*", "/admin", &["inside"]),
            route("api", "api.example.org", "/v1/", &[]),
        ]);
        assert_eq!(hit(&t, "inside", "x", "/admin/metrics").as_deref(), Some("internal"));
        assert_eq!(hit(&t, "public", "x", "/admin/metrics"), None);
        assert_eq!(hit(&t, "public", "api.example.org", "/v1/x").as_deref(), Some("api"));
        assert_eq!(hit(&t, "public", "api.example.org", "/v1"), None);
    }

    #[test]
    fn stripping_routes_forward_the_rest_of_the_path() {
        let mut node = route("node", "*", "/m1/a/8080/", &[]);
        node.strip_prefix = true;
        let mut root = route("root", "*", "/", &[]);
        root.strip_prefix = true;
        let t = table(&[node, root, route("keep", "k.test", "/app", &[])]);
        let stripped = |host: &str, path: &str| {
            let path_only = path.split('?').next().unwrap();
            t.lookup("web", host, path_only).and_then(|r| r.stripped(path))
        };
        assert_eq!(stripped("x", "/m1/a/8080/lab/tree?token=1").as_deref(), Some("/lab/tree?token=1"));
        assert_eq!(stripped("x", "/m1/a/8080/").as_deref(), Some("/"));
        assert_eq!(stripped("x", "/elsewhere").as_deref(), None, "a prefix of / strips nothing");
        assert_eq!(stripped("k.test", "/app/x").as_deref(), None, "strip_prefix is off");
        let t = table(&[{
            let mut api = route("api", "*", "/api", &[]);
            api.strip_prefix = true;
            api
        }]);
        let api = t.lookup("web", "x", "/api").unwrap();
        assert_eq!(api.stripped("/api").as_deref(), Some("/"));
        assert_eq!(api.stripped("/api?q=1").as_deref(), Some("/?q=1"));
        assert_eq!(api.stripped("/api/v1").as_deref(), Some("/v1"));
        assert_eq!(api.strip.as_deref(), Some("/api"));
    }
}
