// The page's JSON checker (web/jsoncheck.js), without a browser: the
// positions it reports, and agreement with JSON.parse on which texts are
// JSON over every one-character deletion, insertion and substitution of
// a real spec.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { ROOT } from './lib.mjs';

// web/ has no package.json, so load the module from its source text.
const src = fs.readFileSync(path.join(ROOT, 'web', 'jsoncheck.js'), 'utf8');
const { checkJson, position } = await import(`data:text/javascript,${encodeURIComponent(src)}`);

const SPEC = `{
  "weightbridge_spec": 1,
  "target": {"format": "keras-h5"},
  "source": {"strip_prefixes": ["module."], "ignore": ["*num_batches_tracked"]},
  "unmapped": "error",
  "layers": [
    {"name": "conv", "type": "Conv2D", "from": "features.0", "expect": {"kernel": [3, 3, 3, 16]}},
    {"name": "bn", "type": "BatchNormalization", "from": "features.1", "note": "eps \\u00e9 1e-5\\n"},
    {"name": "fc", "type": "Dense", "from": "classifier", "flatten": {"chw": [16, 8, 8]}, "x": -0.5e+3}
  ]
}
`;

test('a valid spec and plain values pass', () => {
  assert.equal(checkJson(SPEC), null);
  for (const t of ['0', '-1.5e3', '"x"', 'true', 'null', '[]', '{}', ' [1, [2, {"a": []}]] ', '"\\ud83d\\ude00"']) {
    assert.equal(checkJson(t), null, t);
  }
});

test('errors name the line and column of the offending character', () => {
  const cases = [
    ['{"a": 1,}', 1, 9, /comma before "}"/],
    ['[1, 2,\n]', 2, 1, /comma before "]"/],
    ['{\n  "a": 1\n  "b": 2\n}', 3, 3, /expected "," or "}" after the value of "a"/],
    ['{"a" 1}', 1, 6, /expected ":" after "a"/],
    ["{'a': 1}", 1, 2, /member name in double quotes/],
    ['{"a": \'x\'}', 1, 7, /double quotes, not single quotes/],
    ['{"a": "x\ny"}', 1, 9, /line break inside a string/],
    ['{"a": "x', 1, 7, /not closed/],
    ['{"a": 01}', 1, 8, /expected "," or "}"/],
    ['{"a": tru}', 1, 7, /expected a value/],
    ['{"a": 1} x', 1, 10, /after the end of the JSON value/],
    ['', 1, 1, /value is missing/],
    ['{"a": "\\x"}', 1, 8, /unknown escape/],
    ['{"a": "\\u12g4"}', 1, 8, /four hex digits/],
    ['{"layers": [], "layers": []}', 1, 16, /"layers" appears twice/],
    ['{"a": {"b": 1, "b": 2}}', 1, 16, /"b" appears twice/],
  ];
  for (const [text, line, column, re] of cases) {
    const e = checkJson(text);
    assert.ok(e, `accepted: ${text}`);
    assert.deepEqual([e.line, e.column], [line, column], `${text}: ${e.message}`);
    assert.match(e.message, re, text);
    assert.deepEqual(position(text, e.offset), { line, column });
  }
  // Same name in different objects is fine.
  assert.equal(checkJson('[{"a": 1}, {"a": 2}]'), null);
});

test('nesting is capped as the daemon caps it (64 levels)', () => {
  assert.equal(checkJson('['.repeat(64) + ']'.repeat(64)), null);
  const e = checkJson('['.repeat(65) + ']'.repeat(65));
  assert.match(e.message, /deeper than 64/);
  assert.equal(e.column, 65);
});

test('agrees with JSON.parse on every one-character edit of a spec', () => {
  const alphabet = ['{', '}', '[', ']', ',', ':', '"', '\\', '1', '-', '.', 'e', 'x', ' ', '\n'];
  let edits = 0;
  let invalid = 0;
  const dupFree = (t) => {
    // JSON.parse keeps the last of duplicate names; the checker refuses them.
    const e = checkJson(t);
    return !(e && /appears twice/.test(e.message));
  };
  for (let i = 0; i <= SPEC.length; i++) {
    const variants = [SPEC.slice(0, i) + SPEC.slice(i + 1)];
    for (const c of alphabet) {
      variants.push(SPEC.slice(0, i) + c + SPEC.slice(i));
      variants.push(SPEC.slice(0, i) + c + SPEC.slice(i + 1));
    }
    for (const t of variants) {
      let parses = true;
      try {
        JSON.parse(t);
      } catch {
        parses = false;
      }
      const e = checkJson(t);
      if (parses && dupFree(t)) assert.equal(e, null, `refused valid JSON: ${JSON.stringify(t)}: ${e && e.message}`);
      if (!parses) {
        assert.ok(e, `accepted invalid JSON: ${JSON.stringify(t)}`);
        assert.ok(e.offset >= 0 && e.offset <= t.length);
        invalid++;
      }
      edits++;
    }
  }
  assert.ok(edits > 15000 && invalid > 5000, `${edits} edits, ${invalid} invalid`);
});
