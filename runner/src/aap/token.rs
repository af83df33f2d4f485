//! The AAP token: kept out of every Debug / Display, and re-read from its file (a mounted
//! Secret) when the file changes.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use super::error::AapError;
use crate::secret::Secret;

/// Where the token comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    Static(Secret),
    /// A file holding the token (surrounding whitespace ignored), re-read when it changes.
    File(PathBuf),
}

/// What identifies one version of the token file without reading it. Kubernetes
/// replaces a mounted Secret by swapping a symlink, which changes the inode; an edit in
/// place changes mtime or length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        }
    }
}

/// The current token of a [`TokenSource`]; cheap to ask once per request (one `stat`).
#[derive(Debug)]
pub(crate) struct TokenCache {
    source: TokenSource,
    loaded: Mutex<Option<(FileStamp, Secret)>>,
}

impl TokenCache {
    pub(crate) fn new(source: TokenSource) -> Self {
        Self {
            source,
            loaded: Mutex::new(None),
        }
    }

    pub(crate) fn is_file(&self) -> bool {
        matches!(self.source, TokenSource::File(_))
    }

    /// The token now: the static one, or the file's content, read again when its stamp
    /// changed since the last read.
    pub(crate) fn current(&self) -> Result<Secret, AapError> {
        self.get(false)
    }

    /// Reads the file even if its stamp looks unchanged (after a 401: a rotation within
    /// the file system's timestamp granularity would otherwise go unnoticed).
    pub(crate) fn reload(&self) -> Result<Secret, AapError> {
        self.get(true)
    }

    fn get(&self, force: bool) -> Result<Secret, AapError> {
        let path = match &self.source {
            TokenSource::Static(secret) => return Ok(secret.clone()),
            TokenSource::File(path) => path,
        };
        let unreadable = |cause: String| AapError::Token {
            path: path.clone(),
            cause,
        };
        let stamp = std::fs::metadata(path)
            .map(|m| FileStamp::of(&m))
            .map_err(|e| unreadable(e.to_string()))?;
        {
            let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((seen, secret)) = loaded.as_ref()
                && !force
                && *seen == stamp
            {
                return Ok(secret.clone());
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(unreadable("the file is empty".to_owned()));
        }
        let secret = Secret::new(token);
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.as_ref().is_some_and(|(_, old)| *old != secret) {
            tracing::info!(path = %path.display(), "AAP token file changed; using the new token");
        }
        *loaded = Some((stamp, secret.clone()));
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        let source = TokenSource::Static(s.clone());
        assert!(!format!("{source:?}").contains("hunter2"));
        let cache = TokenCache::new(source);
        assert!(!format!("{cache:?}").contains("hunter2"));
        assert_eq!(cache.current().unwrap().expose(), "hunter2");
    }

    #[test]
    fn file_token_follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let cache = TokenCache::new(TokenSource::File(path.clone()));
        assert_eq!(cache.current().unwrap().expose(), "first");

        // As Kubernetes does: write elsewhere, then rename over the old name.
        let next = dir.path().join("token.new");
        std::fs::write(&next, "second-token").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(cache.current().unwrap().expose(), "second-token");

        std::fs::write(&path, "   ").unwrap();
        let e = cache.current().unwrap_err();
        assert!(matches!(e, AapError::Token { .. }), "{e}");
        assert!(!e.is_permanent());

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(cache.current(), Err(AapError::Token { .. })));
    }

    #[test]
    fn reload_reads_even_when_the_stamp_matches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "aaaa").unwrap();
        let cache = TokenCache::new(TokenSource::File(path.clone()));
        assert_eq!(cache.current().unwrap().expose(), "aaaa");
        // Same length, same inode; mtime may or may not differ at this granularity.
        std::fs::write(&path, "bbbb").unwrap();
        assert_eq!(cache.reload().unwrap().expose(), "bbbb");
    }
}
