// Creating, listing and revoking API keys, for the CLI and the admin API: input is checked against the
// configuration (models and servers that exist, limits above zero) and the key is shown once.
import { McplexError } from '../../errors.js';
import type { ApiKeyRecord, KeyStore } from '../../store/store.js';
import { StoreError } from '../../store/store.js';
import { globsProblem } from '../../wire/glob.js';
import { generateKey } from './keys.js';
import type { Authenticator } from './keys.js';

export interface CreateKeyInput {
  name: string;
  models?: string[];
  servers?: string[];
  tools?: string[];
  admin?: boolean;
  rpm?: number;
  tpm?: number;
  maxConcurrent?: number;
  /** Milliseconds since the epoch, or null for a key that does not expire. */
  expiresAt?: number | null;
}

/** A key as lists show it: everything but the secret's hash. */
export type KeyInfo = Omit<ApiKeyRecord, 'secretHash'>;

export interface KeyService {
  create(input: CreateKeyInput): Promise<{ token: string; key: KeyInfo }>;
  list(): Promise<KeyInfo[]>;
  revoke(id: string): Promise<boolean>;
}

const invalid = (message: string) => new McplexError('KEY_INVALID', message);

export function describeKey(record: ApiKeyRecord): KeyInfo {
  const { secretHash: _hidden, ...info } = record;
  return info;
}

export function createKeyService(
  store: KeyStore,
  known: { models: readonly string[]; servers: readonly string[] },
  authenticator?: Authenticator,
  /** Tells the other processes of the deployment that a key was revoked, so that they stop honouring it at once. */
  announceRevoked?: (id: string) => Promise<void>,
): KeyService {
  return {
    async create(input) {
      const name = input.name?.trim();
      if (!name) throw invalid('a key needs a name');
      if (name.length > 100) throw invalid('a key name has at most 100 characters');
      for (const model of input.models ?? []) {
        if (!known.models.includes(model)) {
          throw invalid(`unknown model "${model}" (configured: ${known.models.join(', ') || 'none'})`);
        }
      }
      for (const server of input.servers ?? []) {
        if (!known.servers.includes(server)) {
          throw invalid(`unknown MCP server "${server}" (configured: ${known.servers.join(', ') || 'none'})`);
        }
      }
      const problem = input.tools && globsProblem(input.tools);
      if (problem) throw invalid(`a key's tools: ${problem}`);
      for (const [field, value] of [
        ['rpm', input.rpm],
        ['tpm', input.tpm],
        ['max-concurrent', input.maxConcurrent],
      ] as const) {
        if (value !== undefined && (!Number.isInteger(value) || value <= 0)) {
          throw invalid(`${field} must be a whole number above 0 (got ${value})`);
        }
      }
      const now = Date.now();
      if (input.expiresAt !== undefined && input.expiresAt !== null && input.expiresAt <= now) {
        throw invalid('the expiry must be in the future');
      }
      const generated = generateKey();
      const record: ApiKeyRecord = {
        id: generated.id,
        name,
        secretHash: generated.secretHash,
        scopes: {
          ...(input.models ? { models: [...input.models] } : {}),
          ...(input.servers ? { servers: [...input.servers] } : {}),
          ...(input.tools ? { tools: [...input.tools] } : {}),
          ...(input.admin ? { admin: true } : {}),
        },
        limits: {
          ...(input.rpm !== undefined ? { rpm: input.rpm } : {}),
          ...(input.tpm !== undefined ? { tpm: input.tpm } : {}),
          ...(input.maxConcurrent !== undefined ? { maxConcurrent: input.maxConcurrent } : {}),
        },
        createdAt: now,
        expiresAt: input.expiresAt ?? null,
        revokedAt: null,
      };
      try {
        await store.create(record);
      } catch (error) {
        if (error instanceof StoreError && error.code === 'DUPLICATE') {
          throw new McplexError('KEY_EXISTS', `a key named "${name}" already exists`);
        }
        throw error;
      }
      return { token: generated.token, key: describeKey(record) };
    },
    async list() {
      return (await store.list()).map(describeKey);
    },
    async revoke(id) {
      const done = await store.revoke(id, Date.now());
      authenticator?.forget(id);
      // The revocation is already stored: a message that does not get through only leaves the others to notice
      // when their cached copy expires.
      if (done) await announceRevoked?.(id).catch(() => {});
      return done;
    },
  };
}
