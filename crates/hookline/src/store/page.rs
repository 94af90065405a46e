//! Pages of the list endpoints, the same for both backends: opaque cursors, the page size, and
//! cutting a `size + 1` fetch down to a page and its next cursor.

use crate::model::{Page, PageRequest};

/// Opaque page cursors: the sort key of the last item returned.
pub(crate) mod cursor {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn encode(parts: &[&str]) -> String {
        URL_SAFE_NO_PAD.encode(parts.join("\u{1f}"))
    }

    pub fn decode(cursor: &str, n: usize) -> Option<Vec<String>> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let parts: Vec<String> = text.split('\u{1f}').map(str::to_owned).collect();
        (parts.len() == n).then_some(parts)
    }
}

pub(super) fn page_size(page: &PageRequest) -> u32 {
    page.size.clamp(1, 1000)
}

/// Cuts a `size + 1` fetch down to `size` and makes the cursor of the last item kept.
pub(super) fn paginate<T>(mut items: Vec<T>, size: u32, key: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() > size as usize {
        items.truncate(size as usize);
        items.last().map(&key)
    } else {
        None
    };
    Page { items, next_cursor }
}
