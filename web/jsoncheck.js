// A strict JSON syntax checker that says where the text goes wrong.
//
// JSON.parse reports errors differently in every browser (some give no
// position at all), and accepts duplicate member names, which the daemon
// refuses.  This checker follows RFC 8259 as the daemon's parser does and
// returns the first error with its line and column (both from 1, columns
// counted in characters), so the editor can point at it.

const MAX_DEPTH = 64; // the daemon's HTTP_SPEC_DEPTH_MAX

class Fail {
  constructor(message, at) {
    this.message = message;
    this.at = at;
  }
}

function describe(text, i) {
  if (i >= text.length) return 'the end of the text';
  const c = text[i];
  if (c === '\n') return 'a line break';
  if (c === '\t') return 'a tab';
  return `"${c}"`;
}

export function position(text, offset) {
  let line = 1;
  let col = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === '\n') {
      line++;
      col = 1;
    } else {
      col++;
    }
  }
  return { line, column: col };
}

// Returns null when text holds exactly one JSON value, otherwise
// {message, line, column, offset}.
export function checkJson(text) {
  let i = 0;
  const n = text.length;
  const number = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

  function space() {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  }

  function string() {
    const start = i;
    let out = '';
    i++;
    while (i < n) {
      const c = text[i];
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\\') {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
            throw new Fail('"\\u" must be followed by four hex digits', i);
          }
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) {
          throw new Fail(`unknown escape "\\${e ?? ''}" in a string`, i);
        }
        out += e;
        i += 2;
        continue;
      }
      if (c < ' ') {
        throw new Fail(c === '\n' ? 'line break inside a string (a closing " is missing?)' :
          'control character inside a string', i);
      }
      out += c;
      i++;
    }
    throw new Fail('a string is not closed (missing ")', start);
  }

  function value(depth) {
    space();
    if (i >= n) throw new Fail('a value is missing at the end of the text', i);
    const c = text[i];
    if (c === '{' || c === '[') {
      if (depth >= MAX_DEPTH) throw new Fail(`nested deeper than ${MAX_DEPTH} levels`, i);
      if (c === '{') object(depth + 1);
      else array(depth + 1);
      return;
    }
    if (c === '"') {
      string();
      return;
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      number.lastIndex = i;
      const m = number.exec(text);
      if (m === null) throw new Fail('malformed number', i);
      i += m[0].length;
      return;
    }
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return;
      }
    }
    if (c === "'") throw new Fail('strings take double quotes, not single quotes', i);
    throw new Fail(`expected a value, found ${describe(text, i)}`, i);
  }

  function object(depth) {
    const names = new Set();
    i++;
    space();
    if (text[i] === '}') {
      i++;
      return;
    }
    for (;;) {
      space();
      if (text[i] !== '"') {
        if (text[i] === '}') throw new Fail('a comma before "}" (trailing commas are not JSON)', i);
        throw new Fail(`expected a member name in double quotes, found ${describe(text, i)}`, i);
      }
      const at = i;
      const name = string();
      if (names.has(name)) throw new Fail(`the member "${name}" appears twice in this object`, at);
      names.add(name);
      space();
      if (text[i] !== ':') throw new Fail(`expected ":" after "${name}", found ${describe(text, i)}`, i);
      i++;
      value(depth);
      space();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        return;
      }
      throw new Fail(`expected "," or "}" after the value of "${name}", found ${describe(text, i)}`, i);
    }
  }

  function array(depth) {
    i++;
    space();
    if (text[i] === ']') {
      i++;
      return;
    }
    for (;;) {
      space();
      if (text[i] === ']') throw new Fail('a comma before "]" (trailing commas are not JSON)', i);
      value(depth);
      space();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return;
      }
      throw new Fail(`expected "," or "]" in a list, found ${describe(text, i)}`, i);
    }
  }

  try {
    value(0);
    space();
    if (i < n) throw new Fail(`unexpected ${describe(text, i)} after the end of the JSON value`, i);
    return null;
  } catch (e) {
    if (!(e instanceof Fail)) throw e;
    return { message: e.message, offset: e.at, ...position(text, e.at) };
  }
}
