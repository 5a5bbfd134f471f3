/** The `remote` option of a Checkpointer and what a replicated save reports (node/replicator.ts does the work, in Node). */
export interface RemoteOptions {
  /** s3://bucket/prefix. Credentials, region and endpoint come from the standard AWS environment and config files
   * (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION). */
  url: string;
  /** Remote checkpoints kept by recency (default: the local keepLast); tagged ones and what kept ones reference
   * stay too, and the newest always. */
  keepLast?: number;
  /** How long close() waits for uploads in progress (default 60000 ms); what is left is uploaded at the next start. */
  closeTimeoutMs?: number;
  /** How long an upload is retried while the store is unreachable or answers 5xx (default 120000 ms). */
  retryMs?: number;
  /** Bytes per multipart part (default 16 MiB); memory held by uploads is at most partBytes x concurrency. */
  partBytes?: number;
  /** Parts in flight at once (default 4). */
  concurrency?: number;
  /** Upload progress, on the training thread at its event-loop turns. */
  onProgress?: (progress: { step: number; sent: number; total: number }) => void;
  /** How long the prefix's lease lasts without renewal (default 30000 ms). */
  leaseMs?: number;
}

export interface ReplicatedInfo {
  step: number;
  /** The remote data object: s3://bucket/prefix/<file>~<id>. */
  key: string;
  bytes: number;
  /** ms from durable to committed remotely. */
  msToReplicated: number;
}
