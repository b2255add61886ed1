// A strict RFC 4180 CSV parser for the e2e tests (Node has none built in):
// records end with CRLF (the last one may omit it), fields are separated by
// commas, a field is either bare (no comma, quote, CR or LF) or quoted, where
// "" stands for one quote and commas, CR and LF are data. Anything else (a
// quote inside a bare field, text after a closing quote, a lone CR or LF, an
// unterminated quote) throws an Error naming the byte offset.
//
//   parseCsv('a,"b ""c"""\r\n1,2\r\n')  // [['a', 'b "c"'], ['1', '2']]

/** Parses `text` into an array of records, each an array of field strings. */
export function parseCsv(text) {
  const records = [];
  if (text === '') return records;
  let record = [];
  let i = 0;
  const n = text.length;
  const fail = (why) => {
    throw new Error(`CSV: ${why} at offset ${i}`);
  };
  for (;;) {
    // One field, starting at i.
    let field = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= n) fail('unterminated quoted field');
        const q = text.indexOf('"', i);
        if (q < 0) fail('unterminated quoted field');
        field += text.slice(i, q);
        i = q + 1;
        if (text[i] === '"') {
          field += '"';
          i++;
        } else break;
      }
      if (i < n && text[i] !== ',' && text[i] !== '\r') fail(`unexpected ${JSON.stringify(text[i])} after a closing quote`);
    } else {
      const start = i;
      while (i < n && text[i] !== ',' && text[i] !== '\r') {
        if (text[i] === '"') fail('quote inside an unquoted field');
        if (text[i] === '\n') fail('bare LF (records end with CRLF)');
        i++;
      }
      field = text.slice(start, i);
    }
    record.push(field);
    if (i >= n) {
      records.push(record); // the last record, without CRLF
      return records;
    }
    if (text[i] === ',') {
      i++;
      continue;
    }
    // text[i] === '\r'
    if (text[i + 1] !== '\n') fail('bare CR (records end with CRLF)');
    i += 2;
    records.push(record);
    record = [];
    if (i >= n) return records;
  }
}
