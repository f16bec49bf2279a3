import { describe, expect, it } from 'vitest';
import { PlainView } from '../../../src/cli/progress.js';
import { jsonSafe, safeEvent, safeField, terminalSafe } from '../../../src/cli/terminal.js';

const ESC = '\x1b';
const hostile = `evil.example/app:v1${ESC}]52;c;cm0gLXJmIH4=\x07${ESC}[2J\r\x9b31m\u202eexe.txt`;

describe('terminal output of untrusted strings', () => {
  it('makes every control a terminal acts on visible, keeping newlines and tabs of ferry lines', () => {
    const out = terminalSafe(`line one ${hostile}\n\tline two\n`);
    expect(out).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
    expect(out).toContain('\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2J\\r\\x9b31m\\u202eexe.txt');
    expect(out.endsWith('\n')).toBe(true);
    expect(out.split('\n')).toHaveLength(3);
  });

  it('keeps one field on its line: newlines inside a value are escaped', () => {
    expect(safeField('a\nverified: OK\tb')).toBe('a\\nverified: OK\\tb');
    expect(safeField('docker.io/library/nginx:1.27')).toBe('docker.io/library/nginx:1.27');
  });

  it('escapes C1 and bidi characters in JSON the JSON way: the value is unchanged', () => {
    const doc = { ref: hostile };
    const text = jsonSafe(JSON.stringify(doc));
    expect(text).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202a-\u202e]/);
    expect(JSON.parse(text)).toEqual(doc);
  });

  it('the plain progress view draws hostile names and messages harmlessly', async () => {
    const lines: string[] = [];
    const view = new PlainView({ write: (l) => lines.push(l) });
    view.onEvent({ kind: 'images', names: [hostile] });
    view.onEvent({
      kind: 'image',
      state: 'resolved',
      image: hostile,
      digest: 'sha256:ab',
      platforms: [`linux/amd64${ESC}[1A`],
      blobs: [],
      total: 0,
    });
    view.onEvent({ kind: 'warning', image: hostile, message: `bad ${ESC}[2K` });
    view.onEvent({ kind: 'image', state: 'failed', image: hostile, error: `no ${ESC}]0;title\x07` });
    await view.finish();
    const all = lines.join('');
    expect(all).not.toContain(ESC);
    expect(all).toContain('\\x1b[1A');
    // Every drawn line is one line: a name cannot forge another.
    for (const l of lines) expect(l.indexOf('\n')).toBe(l.length - 1);
  });

  it('safeEvent leaves numbers and trusted shapes alone', () => {
    expect(safeEvent({ kind: 'blob', state: 'done', digest: 'sha256:ab', bytes: 3, total: 3 })).toEqual({
      kind: 'blob',
      state: 'done',
      digest: 'sha256:ab',
      bytes: 3,
      total: 3,
    });
  });
});
