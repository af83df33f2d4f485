//! How many objects each page of a watch's initial list asks for.
//!
//! Small pages keep the page the runner holds parsed small, which counts at a few thousand
//! instances. But the API server's cost of serving a page grows with the collection, not
//! only with the page (measured on the test bed's v1.37 server: about 6 ms per page at
//! 20,000 objects, 17 ms at 50,000), so a fixed small page makes the list grow with the
//! square of the collection: at 100,000 instances, 1,000 pages of 100 took two minutes.
//! The page therefore grows with the collection, so that a list takes about
//! [`PAGES`] pages and a page holds about a hundredth of what the cache will hold.

use kube::Resource;
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// The page for a collection of a few thousand objects or fewer.
pub const MIN: u32 = 100;
/// The largest page: about 7 MiB of instance JSON.
pub const MAX: u32 = 1000;
/// The number of pages a list takes while the page lies between [`MIN`] and [`MAX`].
const PAGES: usize = 100;

/// The page for a list over `objects` objects.
pub fn for_collection(objects: usize) -> u32 {
    let page = (objects / PAGES).clamp(MIN as usize, MAX as usize);
    page as u32
}

/// The page for `api`'s collection, counted by a one-object metadata list (the API server
/// says how many remain). A server that does not say, or a request that fails (the watch
/// will report that itself), gets [`MAX`]: a larger page costs memory for a moment, a
/// smaller one on a large collection costs minutes.
pub async fn for_api<K>(api: Api<K>) -> u32
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(list) => match list.metadata.remaining_item_count {
            Some(remaining) => for_collection(usize::try_from(remaining).unwrap_or(0) + 1),
            None if list
                .metadata
                .continue_
                .as_deref()
                .unwrap_or_default()
                .is_empty() =>
            {
                for_collection(list.items.len())
            }
            None => MAX,
        },
        Err(e) => {
            tracing::debug!(error = %e, "counting the collection before its list failed");
            MAX
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_collections_get_small_pages_and_large_ones_about_a_hundred_pages() {
        assert_eq!(for_collection(0), MIN);
        assert_eq!(for_collection(1_000), MIN);
        assert_eq!(for_collection(10_000), 100);
        assert_eq!(for_collection(50_000), 500);
        assert_eq!(for_collection(100_000), 1000);
        assert_eq!(for_collection(1_000_000), MAX);
    }
}
