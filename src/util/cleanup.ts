/**
 * Synchronous clean-ups that must run even when the process is forced to exit (a second
 * Ctrl-C calls process.exit, which skips every finally block but still emits 'exit').
 */
const pending = new Set<() => void>();
let hooked = false;

/** Run `fn` at process exit unless the returned function is called first (the normal path). */
export function onExitCleanup(fn: () => void): () => void {
  pending.add(fn);
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const f of pending) {
        try {
          f();
        } catch {
          // best effort: the process is going away
        }
      }
    });
  }
  return () => {
    pending.delete(fn);
  };
}
