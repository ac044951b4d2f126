//! Trained zstd dictionaries (format-spec/objects.md "Dictionaries"): files
//! `dicts/<id>`, each an object envelope of kind `D` (MAC'd and age-encrypted
//! in an encrypted repository) holding a dictionary trained on samples of a
//! repository's small files. Blobs of at most [`DICT_MAX_BLOB`] bytes are
//! compressed with the newest dictionary (compression 2); the zstd frame
//! header names the dictionary by its zstd id, so reading one blob stays one
//! ranged read once the dictionaries (a few, loaded once) are known.
//! Dictionaries are never deleted: any blob may need one.
//!
//! This module is the pure part (the types, training, the checks); reading
//! and writing `dicts/` is `repo::dicts`.

use crate::error::{Error, Result};
use bincode::{Decode, Encode};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest dictionary a reader accepts.
pub const DICT_LIMIT: usize = 1 << 20;
/// Size of the dictionaries strata trains.
pub const DICT_SIZE: usize = 32 << 10;
/// Blobs up to this size are compressed with the dictionary.
pub const DICT_MAX_BLOB: usize = 128 << 10;
/// Most samples a dictionary is trained on ...
pub const SAMPLES: usize = 500;
/// ... each at most this long (saver.rs `dictionary_samples`).
pub const SAMPLE_SLICE: usize = 2 << 10;
/// Fewest samples worth training on ...
pub const MIN_SAMPLES: usize = 200;
/// ... and fewest bytes.
pub const MIN_SAMPLE_BYTES: usize = 128 << 10;
/// A dictionary is reconsidered after this many days (format-spec/objects.md
/// "When to train").
pub const RETRAIN_DAYS: i64 = 30;

/// The body of a `dicts/<id>` file.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DictFile {
    /// When it was trained (Unix ns).
    pub created_unix_ns: i64,
    /// How many samples it was trained on.
    pub samples: u32,
    /// The zstd dictionary (its header carries its zstd id).
    pub dict: Vec<u8>,
}

/// One loaded dictionary.
#[derive(Debug)]
pub struct Dict {
    /// Its file name in `dicts/` (hex of the envelope id).
    pub file: String,
    /// The zstd dictionary id (in its header, and in every frame using it).
    pub zstd_id: u32,
    /// When it was trained.
    pub created_unix_ns: i64,
    /// The dictionary bytes.
    pub bytes: Vec<u8>,
}

/// The dictionaries of a repository.
#[derive(Debug, Default)]
pub struct Dicts {
    by_id: HashMap<u32, Vec<Arc<Dict>>>,
    newest: Option<Arc<Dict>>,
    /// Files that did not decode, each error naming its file.
    pub unreadable: Vec<Error>,
}

impl Dicts {
    /// Dictionaries with zstd id `id` (usually one).
    pub fn with_id(&self, id: u32) -> &[Arc<Dict>] {
        self.by_id.get(&id).map(Vec::as_slice).unwrap_or(&[])
    }
    /// The dictionary new blobs are compressed with.
    pub fn newest(&self) -> Option<&Arc<Dict>> {
        self.newest.as_ref()
    }
    /// How many there are.
    pub fn len(&self) -> usize {
        self.by_id.values().map(Vec::len).sum()
    }
    /// None at all?
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
    /// Add a dictionary read from `dicts/` (the newest by creation time,
    /// then by file name, is the one new blobs use).
    pub fn add(&mut self, d: Arc<Dict>) {
        let newer = self
            .newest
            .as_ref()
            .is_none_or(|n| (d.created_unix_ns, &d.file) > (n.created_unix_ns, &n.file));
        if newer {
            self.newest = Some(d.clone());
        }
        self.by_id.entry(d.zstd_id).or_default().push(d);
    }
}

/// The checks a decoded dictionary file must pass (objects.md limits).
pub fn check(d: DictFile, name: &str) -> Result<Dict> {
    let object = format!("dicts/{name}");
    if d.dict.len() > DICT_LIMIT {
        return Err(Error::corrupt(object, "dictionary over the size limit"));
    }
    let zstd_id = zstd::zstd_safe::get_dict_id_from_dict(&d.dict)
        .ok_or_else(|| Error::corrupt(&object, "not a zstd dictionary"))?
        .get();
    Ok(Dict {
        file: name.to_string(),
        zstd_id,
        created_unix_ns: d.created_unix_ns,
        bytes: d.dict,
    })
}

/// Train a dictionary on `samples`; `None` if there are too few or zstd
/// cannot make one of them.
pub fn train(samples: &[Vec<u8>]) -> Option<Vec<u8>> {
    let bytes: usize = samples.iter().map(Vec::len).sum();
    if samples.len() < MIN_SAMPLES || bytes < MIN_SAMPLE_BYTES {
        return None;
    }
    zstd::dict::from_samples(samples, DICT_SIZE).ok()
}

/// Total zstd-3 size of `samples`, each compressed alone, with `dict` or
/// without: how a dictionary is judged.
pub fn compressed_size(samples: &[Vec<u8>], dict: Option<&[u8]>) -> usize {
    let mut c = match dict {
        Some(d) => zstd::bulk::Compressor::with_dictionary(3, d),
        None => zstd::bulk::Compressor::new(3),
    };
    let Ok(c) = c.as_mut() else {
        return usize::MAX;
    };
    samples
        .iter()
        .map(|s| c.compress(s).map(|v| v.len()).unwrap_or(s.len()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Vec<u8>> {
        (0..400)
            .map(|i| {
                format!(
                    "{{\"id\": {i}, \"type\": \"event\", \"text\": \"{}\"}}",
                    "word ".repeat(i % 50 + 60)
                )
                .into_bytes()
            })
            .collect()
    }

    #[test]
    fn trained_dictionaries_pass_and_limits_hold() {
        let d = train(&samples()).expect("enough samples");
        assert!(d.len() <= DICT_SIZE);
        let ok = check(
            DictFile {
                created_unix_ns: 1,
                samples: 400,
                dict: d.clone(),
            },
            "x",
        )
        .unwrap();
        assert_ne!(ok.zstd_id, 0);
        // not a dictionary, and too large
        assert!(
            check(
                DictFile {
                    created_unix_ns: 1,
                    samples: 1,
                    dict: b"plain text".to_vec()
                },
                "x"
            )
            .is_err()
        );
        let mut big = d;
        big.resize(DICT_LIMIT + 1, 0);
        assert!(
            check(
                DictFile {
                    created_unix_ns: 1,
                    samples: 1,
                    dict: big
                },
                "x"
            )
            .is_err()
        );
        // too few samples: no dictionary
        assert!(train(&samples()[..10]).is_none());
    }

    #[test]
    fn a_dictionary_round_trips_a_blob_and_a_wrong_one_fails() {
        let s = samples();
        let d = check(
            DictFile {
                created_unix_ns: 1,
                samples: 400,
                dict: train(&s).unwrap(),
            },
            "a",
        )
        .unwrap();
        let (comp, stored) = crate::blob::compress(&s[7], 3, Some(&d));
        assert_eq!(comp, crate::blob::Compression::ZstdDict);
        let stored = stored.unwrap();
        assert_eq!(crate::blob::frame_dict_id(&stored), Some(d.zstd_id));
        let back = crate::blob::decompress_with(&stored, &d, s[7].len(), &|| "t".into()).unwrap();
        assert_eq!(back, s[7]);
        let other: Vec<Vec<u8>> = (0..400)
            .map(|i| format!("other {i} {}", "zzz yyy ".repeat(i % 30 + 60)).into_bytes())
            .collect();
        let e = check(
            DictFile {
                created_unix_ns: 2,
                samples: 400,
                dict: train(&other).unwrap(),
            },
            "b",
        )
        .unwrap();
        let wrong = crate::blob::decompress_with(&stored, &e, s[7].len(), &|| "t".into());
        assert!(
            wrong.map(|b| b != s[7]).unwrap_or(true),
            "a wrong dictionary never gives the right bytes"
        );
    }
}
