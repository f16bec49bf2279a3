/** SIGINT/SIGTERM for long-running commands: the first stops the run cleanly, a second forces exit. */
export async function interruptible<T>(run: (signal: AbortSignal) => Promise<T>, cleanup: () => Promise<void> = async () => {}): Promise<T> {
  const ac = new AbortController();
  const onSignal = (): void => {
    if (ac.signal.aborted) process.exit(130);
    process.stderr.write('\nferry: interrupted, stopping (again to force)\n');
    ac.abort(new Error('interrupted'));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await run(ac.signal);
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
