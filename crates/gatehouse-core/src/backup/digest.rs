//! A table's digest: SHA-256 over its rows in primary-key order, each value encoded with a tag
//! and a length, so no two different tables share an encoding.

use gatehouse_crypto::digest::Sha256Stream;

use super::{Class, Table, Value};

#[derive(Debug)]
pub struct TableDigest {
    hash: Sha256Stream,
    rows: u64,
}

impl TableDigest {
    /// A digest that starts with the table's name and columns, so a header that renames or
    /// swaps columns changes it as a changed value would.
    #[must_use]
    pub fn for_table(table: &Table) -> Self {
        let mut d = Self {
            hash: Sha256Stream::default(),
            rows: 0,
        };
        d.bytes(4, table.name.as_bytes());
        for c in &table.columns {
            d.bytes(5, c.name.as_bytes());
            d.hash.update(&[match c.class {
                Class::Integer => 1,
                Class::Text => 2,
                Class::Blob => 3,
            }]);
        }
        d
    }

    pub fn add(&mut self, row: &[Value]) {
        self.rows += 1;
        self.hash.update(&(row.len() as u64).to_be_bytes());
        for v in row {
            match v {
                Value::Null => self.hash.update(&[0]),
                Value::Integer(i) => {
                    self.hash.update(&[1]);
                    self.hash.update(&i.to_be_bytes());
                }
                Value::Text(t) => self.bytes(2, t.as_bytes()),
                Value::Blob(b) => self.bytes(3, b),
            }
        }
    }

    fn bytes(&mut self, tag: u8, data: &[u8]) {
        self.hash.update(&[tag]);
        self.hash.update(&(data.len() as u64).to_be_bytes());
        self.hash.update(data);
    }

    #[must_use]
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Row count and the hex digest.
    #[must_use]
    pub fn finish(self) -> (u64, String) {
        let h = self.hash.finish();
        (self.rows, h.iter().map(|b| format!("{b:02x}")).collect())
    }
}
