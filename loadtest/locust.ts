// Runs loadtest/locustfile.py headless with Debian's Locust (installed by install-locust.sh when missing) and
// resolves with its exit code. What `npm run loadtest` and the fault run share.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const LOCUST = '/usr/bin/locust';

export interface LocustRun {
  host: string;
  users: number;
  /** Seconds. */
  duration: number;
  /** Prefix of Locust's CSV files, if wanted. */
  csv?: string;
  env?: NodeJS.ProcessEnv;
  /** Where Locust's own output goes. Default: this process's stderr. */
  quiet?: boolean;
}

export async function ensureLocust(): Promise<void> {
  if (existsSync(LOCUST)) return;
  const install = spawn('sh', [join(HERE, 'install-locust.sh')], { stdio: 'inherit' });
  const code = await new Promise<number | null>((resolve) => install.once('exit', resolve));
  if (code !== 0 || !existsSync(LOCUST)) throw new Error('Locust is not installed (loadtest/install-locust.sh)');
}

export async function runLocust(run: LocustRun): Promise<{ code: number | null; output: string }> {
  await ensureLocust();
  const args = [
    '-f',
    join(HERE, 'locustfile.py'),
    '--headless',
    '-u',
    String(run.users),
    '-r',
    String(run.users),
    '-t',
    `${run.duration}s`,
    '--host',
    run.host,
    '--only-summary',
    // Users stop at the end of their request: nothing is cut mid-request when the time is up.
    '--stop-timeout',
    '15',
    ...(run.csv ? ['--csv', run.csv] : []),
  ];
  const child = spawn(LOCUST, args, { env: { ...process.env, ...run.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    if (!run.quiet) process.stderr.write(chunk);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, output };
}
