//! The journal: one record per command, under a global sequence number, in
//! its own keyspace. A record holds everything the command changes (its
//! write set); it is the only thing written before the fsync that makes a
//! command durable. Everything else — records by id, indexes, ledger rows,
//! outbox rows — is derived from it afterwards by the indexer, which writes
//! its progress (the last sequence applied) in the same batch. Recovery is
//! "apply the journal after that point".
//!
//! Format (version 1), all integers little-endian:
//! `[version u8][op count u32]` then per op
//! `[space u8][key len u32][key][0 = remove | 1 = put][value len u32][value]`.
//! fjall's own journal gives checksums and torn-tail handling for the row.

use crate::{Space, StorageError, WriteSet};

/// The version byte of a journal record.
const RECORD_VERSION: u8 = 1;

pub(crate) fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub(crate) fn seq_of(key: &[u8]) -> Result<u64, StorageError> {
    key.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StorageError::Codec("journal key is not 8 bytes".into()))
}

fn len_u32(len: usize) -> Result<[u8; 4], StorageError> {
    u32::try_from(len)
        .map(u32::to_le_bytes)
        .map_err(|_| StorageError::Codec("a key or value over 4 GiB".into()))
}

/// Encodes a write set as one journal record.
pub(crate) fn encode(writes: &WriteSet) -> Result<Vec<u8>, StorageError> {
    let size: usize = writes
        .ops
        .iter()
        .map(|(_, k, v)| 10 + k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    let mut out = Vec::with_capacity(5 + size);
    out.push(RECORD_VERSION);
    out.extend_from_slice(&len_u32(writes.ops.len())?);
    for (space, key, value) in &writes.ops {
        out.push(*space as u8);
        out.extend_from_slice(&len_u32(key.len())?);
        out.extend_from_slice(key);
        match value {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                out.extend_from_slice(&len_u32(value.len())?);
                out.extend_from_slice(value);
            }
        }
    }
    Ok(out)
}

/// Reads a journal record back into its write set.
pub(crate) fn decode(bytes: &[u8]) -> Result<WriteSet, StorageError> {
    let bad = |why: &str| StorageError::Codec(format!("journal record: {why}"));
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8()?;
    if version != RECORD_VERSION {
        return Err(bad(&format!(
            "version {version}, this build reads {RECORD_VERSION}"
        )));
    }
    let count = r.u32()?;
    let mut writes = WriteSet::new();
    for _ in 0..count {
        let tag = r.u8()?;
        let space = Space::ALL
            .get(usize::from(tag))
            .copied()
            .filter(|s| !s.is_internal())
            .ok_or_else(|| bad("unknown keyspace"))?;
        let key_len = r.u32()?;
        let key = r.take(key_len)?.to_vec();
        match r.u8()? {
            0 => writes.remove(space, key),
            1 => {
                let value_len = r.u32()?;
                writes.put_raw(space, key, r.take(value_len)?.to_vec());
            }
            _ => return Err(bad("unknown op")),
        }
    }
    if r.at != bytes.len() {
        return Err(bad("trailing bytes"));
    }
    Ok(writes)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| StorageError::Codec("journal record: cut short".into()))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<usize, StorageError> {
        let raw: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| StorageError::Codec("journal record: cut short".into()))?;
        usize::try_from(u32::from_le_bytes(raw))
            .map_err(|_| StorageError::Codec("journal record: length".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_damage() {
        let mut writes = WriteSet::new();
        writes.put_raw(Space::Payments, b"k1".to_vec(), b"value one".to_vec());
        writes.remove(Space::Pending, vec![0; 25]);
        writes.put_raw(Space::Index, vec![7; 33], Vec::new());
        let bytes = encode(&writes).unwrap();
        let back = decode(&bytes).unwrap();
        assert_eq!(back.ops, writes.ops);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut other_version = bytes;
        other_version[0] = 9;
        assert!(decode(&other_version).is_err());
        assert_eq!(seq_of(&key(42)).unwrap(), 42);
    }

    #[test]
    fn a_space_is_its_position_in_all() {
        // The record names a keyspace by its discriminant and `decode` looks
        // it up in `Space::ALL`: the two must agree.
        for (i, space) in Space::ALL.iter().enumerate() {
            assert_eq!(*space as usize, i, "{space:?}");
        }
    }
}
