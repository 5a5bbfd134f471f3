/** MemoryStore: a CheckpointStore in memory, for tests and for the contract suite's reference (as LevelDB's
 * memenv is to its Env): every object whole or absent, the same commit order as on disk, a lock per location
 * within the process. Checkpoints go through the codec, so what is read back is verified like a file. */
import { CheckpointError, argumentError } from '../binding/errors';
import { decodeCheckpoint } from '../format/codec';
import { HeaderInfo, ReadOptions, ReadResult, SaveResult } from '../format/file';
import { commitThroughCodec } from './codec-commit';
import { CheckpointStore, CommitRequest, StoredObject, StoreLock } from './store';

const held = new Map<string, string>();

function plainName(name: string): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw argumentError(`"${String(name)}" is not a plain object name`);
  }
  return name;
}

export class MemoryStore implements CheckpointStore {
  readonly location: string;
  private readonly objects = new Map<string, Uint8Array>();

  /** `name` labels it in messages (memory://name); two stores with one name share one lock. */
  constructor(name = 'default') {
    this.location = `memory://${name}`;
  }

  async open(): Promise<void> {}

  async lock(): Promise<StoreLock> {
    const holder = held.get(this.location);
    if (holder !== undefined)
      throw new CheckpointError(`${this.location} is in use by another writer (${holder}); one writer per run`, { code: 'ECKPT_LOCKED', path: this.location });
    held.set(this.location, `pid ${process.pid}, since ${new Date().toISOString()}`);
    let released = false;
    return {
      release: () => {
        if (!released) {
          released = true;
          held.delete(this.location);
        }
      },
    };
  }

  async list(): Promise<StoredObject[]> {
    return [...this.objects.keys()].sort().map((name) => ({ name }));
  }

  commit(request: CommitRequest): Promise<SaveResult> {
    return commitThroughCodec(
      request,
      {
        put: async (name, data) => {
          this.objects.set(plainName(name), new Uint8Array(data));
        },
        remove: async (names) => {
          for (const n of names) this.objects.delete(plainName(n));
        },
      },
      this.location,
    );
  }

  async writeSmall(name: string, data: Uint8Array): Promise<void> {
    this.objects.set(plainName(name), new Uint8Array(data));
  }

  async appendSmall(name: string, data: Uint8Array): Promise<void> {
    const before = this.objects.get(plainName(name)) ?? new Uint8Array(0);
    const joined = new Uint8Array(before.length + data.length);
    joined.set(before);
    joined.set(data, before.length);
    this.objects.set(name, joined);
  }

  async readSmall(name: string): Promise<Uint8Array | null> {
    const data = this.objects.get(plainName(name));
    return data ? new Uint8Array(data) : null;
  }

  private bytes(name: string): Uint8Array {
    const data = this.objects.get(plainName(name));
    if (!data) throw new CheckpointError(`${this.location}/${name} does not exist`, { code: 'ENOENT', path: `${this.location}/${name}` });
    return data;
  }

  async read(name: string, options: ReadOptions = {}): Promise<ReadResult> {
    // A copy: the caller may write into the tensors it gets, as with a file's private mapping.
    const r = await decodeCheckpoint(new Uint8Array(this.bytes(name)), { verify: options.verify ?? true });
    const { contentId: _contentId, ...result } = r;
    void _contentId;
    return result;
  }

  async readHeader(name: string): Promise<HeaderInfo> {
    return headerOf(await decodeCheckpoint(this.bytes(name), { verify: false }));
  }

  async remove(names: string[]): Promise<void> {
    for (const n of names) this.objects.delete(plainName(n));
  }

  async cleanStaleTemps(): Promise<string[]> {
    return []; // every object is put whole: nothing temporary is ever visible
  }

  /** Tests: the object's bytes, to damage them in place. */
  rawObject(name: string): Uint8Array | undefined {
    return this.objects.get(name);
  }
}

/** A decoded file as readHeader reports it (the tensors' names, dtypes, shapes and sizes; the metadata; the
 * content id). */
export function headerOf(r: ReadResult & { contentId?: string }): HeaderInfo {
  return {
    tensors: Object.entries(r.tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape], bytes: t.data.byteLength })),
    metadata: r.metadata,
    bytes: r.bytes,
    checksummed: r.contentId !== undefined,
    ...(r.contentId !== undefined ? { contentId: r.contentId } : {}),
  };
}
