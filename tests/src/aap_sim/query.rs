//! List queries as AWX's generic list views take them: Django-style field filters
//! (`id__in=`, `created__gte=`, `not__status=`), `order_by`, and page-number pagination
//! whose links are paths.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use axum::response::Response;
use k8s_openapi::jiff::Timestamp;

use super::clock::parse_filter_time;
use super::responses;

pub(crate) const DEFAULT_PAGE_SIZE: usize = 25;
pub(crate) const MAX_PAGE_SIZE: usize = 200;

/// Query parameters that are not field filters (AWX's `FieldLookupBackend.RESERVED_NAMES`).
const RESERVED: [&str; 11] = [
    "page",
    "page_size",
    "format",
    "order",
    "order_by",
    "search",
    "type",
    "host_filter",
    "count_disabled",
    "no_truncate",
    "limit",
];

const LOOKUPS: [&str; 14] = [
    "exact",
    "iexact",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "in",
    "gt",
    "gte",
    "lt",
    "lte",
    "isnull",
];

/// A field's value as a filter sees it; `None` is SQL NULL.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum FieldValue {
    Int(Option<u64>),
    /// A foreign key: filter values may be `null` / `none`.
    Ref(Option<u64>),
    Str(Option<String>),
    Time(Option<Timestamp>),
    Bool(bool),
}

/// One page of a list.
pub(crate) struct Page<T> {
    pub(crate) count: usize,
    pub(crate) next: Option<String>,
    pub(crate) previous: Option<String>,
    pub(crate) results: Vec<T>,
}

impl<T> Page<T> {
    /// The page as AWX's list views answer it, each item written by `serialize`.
    pub(crate) fn response(&self, serialize: impl Fn(&T) -> serde_json::Value) -> Response {
        responses::json(
            200,
            &serde_json::json!({
                "count": self.count,
                "next": self.next,
                "previous": self.previous,
                "results": self.results.iter().map(serialize).collect::<Vec<_>>(),
            }),
        )
    }
}

/// A list query AWX refuses: the status and the `detail` message.
#[derive(Debug)]
pub(crate) struct QueryError {
    status: u16,
    detail: String,
}

impl QueryError {
    pub(crate) fn response(&self) -> Response {
        responses::detail(self.status, &self.detail)
    }
}

fn bad_request(detail: String) -> QueryError {
    QueryError {
        status: 400,
        detail,
    }
}

fn invalid_page() -> QueryError {
    QueryError {
        status: 404,
        detail: "Invalid page.".to_owned(),
    }
}

/// What a list view knows of its model.
pub(crate) struct Model {
    /// Django's model name, for error messages.
    pub(crate) name: &'static str,
    pub(crate) fields: &'static [&'static str],
    /// Fields AWX marks `prevent_search` (e.g. `extra_vars`): filtering on them is 403.
    pub(crate) prevented: &'static [&'static str],
}

struct Filter {
    field: String,
    lookup: String,
    value: String,
    negate: bool,
}

/// Filters, orders and paginates `items`. `field` answers one of `model`'s fields for
/// an item. `path` is the request path the page links point to.
pub(crate) fn list<T>(
    mut items: Vec<T>,
    params: &[(String, String)],
    path: &str,
    model: &Model,
    field: impl Fn(&T, &str) -> Option<FieldValue>,
) -> Result<Page<T>, QueryError> {
    let mut and = Vec::new();
    let mut or = Vec::new();
    for (key, value) in params {
        if RESERVED.contains(&key.as_str()) {
            continue;
        }
        // AWX: `chain__` or `or__` first, then `not__`.
        let (key, in_or) = match key.strip_prefix("or__") {
            Some(k) => (k, true),
            None => (key.strip_prefix("chain__").unwrap_or(key), false),
        };
        let (key, negate) = match key.strip_prefix("not__") {
            Some(k) => (k, true),
            None => (key, false),
        };
        let (name, lookup) = match key.rsplit_once("__") {
            Some((name, lookup)) if LOOKUPS.contains(&lookup) => (name, lookup),
            _ => (key, "exact"),
        };
        if model.prevented.contains(&name) {
            return Err(QueryError {
                status: 403,
                detail: format!("Filtering on {name} is not allowed."),
            });
        }
        // Checked before any item is looked at: an unknown field is an error even when
        // the list is empty.
        if !model.fields.contains(&name) {
            return Err(bad_request(format!(
                "{} has no field named '{name}'",
                model.name
            )));
        }
        if lookup == "in" && value.is_empty() {
            return Err(bad_request(
                "cannot provide empty value for __in".to_owned(),
            ));
        }
        let filter = Filter {
            field: name.to_owned(),
            lookup: lookup.to_owned(),
            value: value.clone(),
            negate,
        };
        if in_or {
            or.push(filter)
        } else {
            and.push(filter)
        }
    }
    let mut kept = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        let mut keep = true;
        for f in &and {
            let value = field(&item, &f.field).unwrap_or(FieldValue::Str(None));
            if matches(&value, f)? == f.negate {
                keep = false;
            }
        }
        if keep && !or.is_empty() {
            let mut any = false;
            for f in &or {
                let value = field(&item, &f.field).unwrap_or(FieldValue::Str(None));
                any |= matches(&value, f)? != f.negate;
            }
            keep = any;
        }
        if keep {
            kept.push(item);
        }
    }
    let mut items = kept;

    if let Some(order) = params
        .iter()
        .rev()
        .find(|(k, _)| k == "order_by" || k == "order")
    {
        let keys: Vec<(String, bool)> = order
            .1
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix('-') {
                Some(name) => (name.to_owned(), true),
                None => (s.to_owned(), false),
            })
            .collect();
        if let Some((bad, _)) = keys
            .iter()
            .find(|(k, _)| !model.fields.contains(&k.as_str()))
        {
            return Err(bad_request(format!(
                "{} has no field named '{bad}'",
                model.name
            )));
        }
        items.sort_by(|a, b| {
            for (key, descending) in &keys {
                let ordering = compare(&field(a, key), &field(b, key));
                let ordering = if *descending {
                    ordering.reverse()
                } else {
                    ordering
                };
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            Ordering::Equal
        });
    }

    paginate(items, params, path)
}

fn paginate<T>(
    items: Vec<T>,
    params: &[(String, String)],
    path: &str,
) -> Result<Page<T>, QueryError> {
    let param = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    // DRF: a page size that is not a positive integer means the default; too big means
    // the maximum.
    let requested_size = param("page_size").and_then(|v| v.parse::<usize>().ok());
    let page_size = match requested_size {
        Some(0) | None => DEFAULT_PAGE_SIZE,
        Some(n) => n.min(MAX_PAGE_SIZE),
    };
    let count = items.len();
    let pages = count.div_ceil(page_size).max(1);
    let page = match param("page") {
        None => 1,
        Some("last") => pages,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(invalid_page()),
        },
    };
    if page > pages {
        return Err(invalid_page());
    }
    let capped = requested_size.is_some_and(|n| n > MAX_PAGE_SIZE);
    let link = |number: usize| {
        let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in params {
            query.entry(k.clone()).or_default().push(v.clone());
        }
        query.insert("page".to_owned(), vec![number.to_string()]);
        if capped {
            query.insert("page_size".to_owned(), vec![MAX_PAGE_SIZE.to_string()]);
        }
        format!("{path}?{}", urlencode(&query))
    };
    let next = (page < pages).then(|| link(page + 1));
    let previous = (page > 1).then(|| link(page - 1));
    let results = items
        .into_iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .collect();
    Ok(Page {
        count,
        next,
        previous,
        results,
    })
}

/// Python's `urlencode(sorted(...), doseq=True)`, which DRF's page links use.
fn urlencode(query: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = String::new();
    for (key, values) in query {
        for value in values {
            if !out.is_empty() {
                out.push('&');
            }
            quote_plus(key, &mut out);
            out.push('=');
            quote_plus(value, &mut out);
        }
    }
    out
}

fn quote_plus(text: &str, out: &mut String) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
}

/// Postgres order: NULL sorts after every value.
fn compare(a: &Option<FieldValue>, b: &Option<FieldValue>) -> Ordering {
    use FieldValue as F;
    fn opt<T: Ord>(a: &Option<T>, b: &Option<T>) -> Ordering {
        match (a, b) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
    match (a, b) {
        (Some(F::Int(a) | F::Ref(a)), Some(F::Int(b) | F::Ref(b))) => opt(a, b),
        (Some(F::Str(a)), Some(F::Str(b))) => opt(a, b),
        (Some(F::Time(a)), Some(F::Time(b))) => opt(a, b),
        (Some(F::Bool(a)), Some(F::Bool(b))) => a.cmp(b),
        _ => Ordering::Equal,
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "1" => Some(true),
        "false" | "False" | "0" => Some(false),
        _ => None,
    }
}

fn matches(value: &FieldValue, f: &Filter) -> Result<bool, QueryError> {
    use FieldValue as F;
    let lookup = f.lookup.as_str();
    if lookup == "isnull" {
        let want = parse_bool(&f.value).ok_or_else(|| {
            bad_request(format!("'{}' value must be either True or False.", f.value))
        })?;
        let is_null = matches!(
            value,
            F::Int(None) | F::Ref(None) | F::Str(None) | F::Time(None)
        );
        return Ok(is_null == want);
    }
    let values: Vec<&str> = if lookup == "in" {
        f.value.split(',').collect()
    } else {
        vec![f.value.as_str()]
    };
    match value {
        F::Int(v) | F::Ref(v) => {
            let reference = matches!(value, F::Ref(_));
            let mut wanted: Vec<Option<u64>> = Vec::new();
            for text in &values {
                let text = text.trim();
                if reference && matches!(text.to_lowercase().as_str(), "null" | "none") {
                    wanted.push(None);
                    continue;
                }
                let n = text.parse::<u64>().map_err(|_| {
                    bad_request(if reference {
                        format!("Invalid {} id: {text}", f.field)
                    } else {
                        format!("“{text}” value must be an integer.")
                    })
                })?;
                wanted.push(Some(n));
            }
            let Some(v) = *v else {
                return Ok(wanted.contains(&None));
            };
            Ok(match (lookup, wanted[0]) {
                ("gt", Some(w)) => v > w,
                ("gte", Some(w)) => v >= w,
                ("lt", Some(w)) => v < w,
                ("lte", Some(w)) => v <= w,
                _ => wanted.contains(&Some(v)),
            })
        }
        F::Time(v) => {
            let mut wanted = Vec::new();
            for text in &values {
                let t = parse_filter_time(text.trim()).ok_or_else(|| {
                    bad_request(format!(
                        "“{text}” value has an invalid format. It must be in YYYY-MM-DD HH:MM[:ss[.uuuuuu]][TZ] format."
                    ))
                })?;
                wanted.push(t);
            }
            let Some(v) = v else { return Ok(false) };
            Ok(match lookup {
                "gt" => *v > wanted[0],
                "gte" => *v >= wanted[0],
                "lt" => *v < wanted[0],
                "lte" => *v <= wanted[0],
                _ => wanted.contains(v),
            })
        }
        F::Bool(v) => {
            let want = parse_bool(&f.value).ok_or_else(|| {
                bad_request(format!("'{}' value must be either True or False.", f.value))
            })?;
            Ok(*v == want)
        }
        F::Str(v) => {
            let Some(v) = v else { return Ok(false) };
            let lower = v.to_lowercase();
            let w = f.value.as_str();
            let wl = w.to_lowercase();
            Ok(match lookup {
                "iexact" => lower == wl,
                "contains" => v.contains(w),
                "icontains" => lower.contains(&wl),
                "startswith" => v.starts_with(w),
                "istartswith" => lower.starts_with(&wl),
                "endswith" => v.ends_with(w),
                "iendswith" => lower.ends_with(&wl),
                "gt" => v.as_str() > w,
                "gte" => v.as_str() >= w,
                "lt" => v.as_str() < w,
                "lte" => v.as_str() <= w,
                "in" => values.contains(&v.as_str()),
                _ => v == w,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const MODEL: Model = Model {
        name: "Job",
        fields: &["id"],
        prevented: &["extra_vars"],
    };

    fn ids(n: u64) -> Vec<u64> {
        (1..=n).collect()
    }

    fn field(item: &u64, name: &str) -> Option<FieldValue> {
        (name == "id").then_some(FieldValue::Int(Some(*item)))
    }

    #[test]
    fn links_are_sorted_paths_with_capped_page_size() {
        let page = list(
            ids(450),
            &p(&[("page_size", "500"), ("id__in", "1,2,3")]),
            "/api/v2/jobs/",
            &MODEL,
            field,
        )
        .unwrap();
        assert_eq!(page.count, 3);
        assert!(page.next.is_none());

        let page = list(
            ids(450),
            &p(&[("page_size", "500")]),
            "/api/v2/jobs/",
            &MODEL,
            field,
        )
        .unwrap();
        assert_eq!(page.results.len(), 200);
        assert_eq!(
            page.next.as_deref(),
            Some("/api/v2/jobs/?page=2&page_size=200")
        );
        assert_eq!(page.previous, None);
    }

    #[test]
    fn filters_negate_and_order() {
        let page = list(
            ids(5),
            &p(&[("not__id", "2"), ("id__lte", "4"), ("order_by", "-id")]),
            "/x/",
            &MODEL,
            field,
        )
        .unwrap();
        assert_eq!(page.results, vec![4, 3, 1]);
        assert!(list(ids(5), &p(&[("nope", "1")]), "/x/", &MODEL, field).is_err());
        assert!(list(ids(5), &p(&[("id__in", "a")]), "/x/", &MODEL, field).is_err());
        assert!(list(ids(5), &p(&[("page", "2")]), "/x/", &MODEL, field).is_err());
        let prevented = list(
            ids(5),
            &p(&[("extra_vars__contains", "k")]),
            "/x/",
            &MODEL,
            field,
        );
        assert_eq!(prevented.err().unwrap().status, 403);
        let page = list(
            ids(5),
            &p(&[("or__id", "1"), ("or__not__id__lte", "4")]),
            "/x/",
            &MODEL,
            field,
        )
        .unwrap();
        assert_eq!(page.results, vec![1, 5]);
    }
}
