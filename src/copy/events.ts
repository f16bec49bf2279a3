/** Progress as typed events. The core emits; only the CLI draws. */
export type CopyEvent =
  /** Emitted once, before any other image event: the names every image of the run goes by. */
  | { kind: 'images'; names: string[] }
  | {
      kind: 'image';
      state: 'resolving' | 'resolved' | 'done' | 'failed';
      image: string;
      digest?: string;
      blobs?: string[];
      total?: number;
      platforms?: string[];
      originalDigest?: string;
      error?: string;
    }
  | {
      kind: 'blob';
      state: 'start' | 'progress' | 'done' | 'skipped' | 'failed';
      digest: string;
      bytes: number;
      total: number;
      error?: string;
    }
  | { kind: 'retry'; image?: string; digest?: string; reason: string; attempt: number; delayMs?: number }
  | { kind: 'warning'; image?: string; message: string };

export type EventSink = (e: CopyEvent) => void;
