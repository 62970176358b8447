// ConfigError: the one error the config module throws, carrying every problem found with its path,
// plus the helper that turns a path into the dotted form shown to users.

export type ConfigErrorCode = 'CONFIG_READ' | 'CONFIG_PARSE' | 'CONFIG_INVALID';

export interface ConfigProblem {
  /** Dotted path into the config (`mcpServers.fs.command`); empty for whole-file problems. */
  readonly path: string;
  readonly message: string;
}

const HEADLINES: Record<ConfigErrorCode, string> = {
  CONFIG_READ: 'cannot read configuration',
  CONFIG_PARSE: 'cannot parse configuration',
  CONFIG_INVALID: 'invalid configuration',
};

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code: ConfigErrorCode;
  readonly problems: readonly ConfigProblem[];
  /** The file (or other label) the configuration came from, if known. */
  readonly source: string | undefined;

  constructor(code: ConfigErrorCode, problems: readonly ConfigProblem[], source?: string, options?: ErrorOptions) {
    const lines = problems.map((p) => (p.path === '' ? `  ${p.message}` : `  ${p.path}: ${p.message}`));
    super([`${source ?? 'configuration'}: ${HEADLINES[code]}`, ...lines].join('\n'), options);
    this.code = code;
    this.problems = Object.freeze(problems.map((p) => Object.freeze({ path: p.path, message: p.message })));
    this.source = source;
  }
}

const PLAIN_SEGMENT = /^[A-Za-z0-9_$-]+$/;

/** `['mcpServers', 'fs', 'args', 0]` → `mcpServers.fs.args[0]`; odd keys are quoted: `mcpServers["my server"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && PLAIN_SEGMENT.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}
