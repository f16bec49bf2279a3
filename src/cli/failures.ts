/**
 * The failures section of a command's final report (pull, bundle, load, mirror): failures with
 * one cause (one blob shared by many images that failed its digest check, say) printed once,
 * naming every image they affect, with their hint once; the rest one per image. `--json` keeps
 * one record per image, each carrying its `cause` key.
 */

export interface FailureRecord {
  name: string;
  error: string;
  errorCode?: string;
  hint?: string;
  /** Failures with the same cause come from one error (see copy/execute.ts failedResult). */
  cause?: string;
}

export interface FailureGroup {
  cause?: string;
  /** The text the images' messages share (their per-image context left out), or the one message. */
  error: string;
  errorCode?: string;
  hint?: string;
  names: string[];
}

/**
 * What the messages of one cause say without their per-image context ("pulling NAME: "): the
 * message when all are equal, else their longest common suffix: whole when it is one of the
 * messages (one without context), else from its first ": " on (it starts inside the names). Undefined when too short to say anything.
 */
function commonText(messages: string[]): string | undefined {
  const first = messages[0]!;
  if (messages.every((m) => m === first)) return first;
  let suffix = first;
  for (const m of messages.slice(1)) {
    let i = 0;
    while (i < suffix.length && i < m.length && suffix[suffix.length - 1 - i] === m[m.length - 1 - i]) i++;
    suffix = suffix.slice(suffix.length - i);
  }
  // One message may be the bare error (it named its image already, so it got no context).
  if (messages.includes(suffix)) return suffix;
  const at = suffix.indexOf(': ');
  const text = at === -1 ? '' : suffix.slice(at + 2);
  return text.length >= 12 ? text : undefined;
}

/** Group failures by cause (first appearance order); failures without a cause are groups of one. */
export function groupFailures(failures: readonly FailureRecord[]): FailureGroup[] {
  const groups: Array<{ cause?: string; records: FailureRecord[] }> = [];
  const byCause = new Map<string, { records: FailureRecord[] }>();
  for (const f of failures) {
    if (f.cause === undefined) {
      groups.push({ records: [f] });
      continue;
    }
    const g = byCause.get(f.cause);
    if (g) g.records.push(f);
    else {
      const fresh = { cause: f.cause, records: [f] };
      byCause.set(f.cause, fresh);
      groups.push(fresh);
    }
  }
  return groups.map(({ cause, records }) => {
    const first = records[0]!;
    const error = records.length === 1 ? first.error : (commonText(records.map((r) => r.error)) ?? first.error);
    return {
      ...(cause !== undefined ? { cause } : {}),
      error,
      ...(first.errorCode !== undefined ? { errorCode: first.errorCode } : {}),
      ...(first.hint !== undefined ? { hint: first.hint } : {}),
      names: records.map((r) => r.name),
    };
  });
}

/** The failure lines of a final report (each ends with a newline). */
export function formatFailures(failures: readonly FailureRecord[]): string[] {
  const lines: string[] = [];
  for (const g of groupFailures(failures)) {
    if (g.names.length === 1) lines.push(`failed: ${g.names[0]}: ${g.error}\n`);
    else {
      lines.push(`failed: ${g.names.length} images, one cause: ${g.error}\n`);
      for (const n of g.names) lines.push(`  ${n}\n`);
    }
    if (g.hint) lines.push(`  hint: ${g.hint}\n`);
  }
  return lines;
}
