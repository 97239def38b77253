//! Durable appends with group commit. Every caller's line is on disk (written and `fsync`ed)
//! when `append` returns; callers that arrive while a sync is running are written together by
//! the next one, so a busy broker pays one `fsync` per batch instead of one per request.
//!
//! A failed write fails every append of its batch; the file is reopened for the next batch.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

pub struct AppendFile {
    path: PathBuf,
    state: Mutex<State>,
    synced: Condvar,
}

#[derive(Default)]
struct State {
    file: Option<File>,
    /// Lines waiting for the next batch.
    pending: Vec<u8>,
    /// Sequence number of the last line queued, and of the last line whose batch finished.
    queued: u64,
    done: u64,
    /// Batches that failed: (first, last) sequence numbers and the error.
    failed: Vec<(u64, u64, String)>,
    /// Failures up to here were forgotten; an append this old whose outcome is unknown fails
    /// (closed), which only happens after dozens of failed batches.
    forgotten_upto: u64,
    syncing: bool,
}

impl std::fmt::Debug for AppendFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendFile").field("path", &self.path).finish_non_exhaustive()
    }
}

impl AppendFile {
    /// The file is opened (and created) by the first append.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            state: Mutex::new(State::default()),
            synced: Condvar::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `line` (which should end in a newline) and returns once it is durable.
    pub fn append(&self, line: &[u8]) -> std::io::Result<()> {
        let mut st = self.lock();
        st.pending.extend_from_slice(line);
        st.queued += 1;
        let mine = st.queued;
        loop {
            if st.done >= mine {
                return match st.failed.iter().find(|(a, b, _)| (*a..=*b).contains(&mine)) {
                    Some((_, _, e)) => Err(std::io::Error::other(e.clone())),
                    None if mine <= st.forgotten_upto => Err(std::io::Error::other("outcome of this append is unknown")),
                    None => Ok(()),
                };
            }
            if st.syncing {
                st = self.synced.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead the next batch: everything queued so far.
            st.syncing = true;
            let batch = std::mem::take(&mut st.pending);
            let (first, last) = (st.done + 1, st.queued);
            let mut file = st.file.take();
            drop(st);
            let result = self.write(&mut file, &batch);
            st = self.lock();
            st.syncing = false;
            st.done = last;
            match result {
                Ok(()) => st.file = file,
                Err(e) => st.failed.push((first, last, e.to_string())),
            }
            if st.failed.len() > 64 {
                let dropped: Vec<_> = st.failed.drain(..32).collect();
                st.forgotten_upto = dropped.last().map_or(st.forgotten_upto, |(_, b, _)| *b);
            }
            self.synced.notify_all();
        }
    }

    fn write(&self, file: &mut Option<File>, batch: &[u8]) -> std::io::Result<()> {
        if file.is_none() {
            *file = Some(OpenOptions::new().create(true).append(true).open(&self.path)?);
        }
        let Some(f) = file.as_mut() else {
            return Err(std::io::Error::other("log file not open"));
        };
        f.write_all(batch)?;
        f.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_appends_all_land_whole_and_in_fewer_syncs() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = Arc::new(AppendFile::new(&dir.path().join("log")));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let f = f.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        f.append(format!("{t}-{i}\n").as_bytes()).expect("append");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let text = std::fs::read_to_string(dir.path().join("log")).expect("read");
        let mut lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 800);
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), 800, "every line once, none torn");
    }

    #[test]
    fn a_failed_write_fails_its_appends() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("log");
        std::fs::create_dir(&path).expect("a directory where the file should be");
        let f = AppendFile::new(&path);
        assert!(f.append(b"x\n").is_err());
        std::fs::remove_dir(&path).expect("rm");
        f.append(b"y\n").expect("works again once the path is writable");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "y\n");
    }
}
