// Child processes of a benchmark run: started from a command, ready when their output matches, and all stopped at
// the end (SIGTERM, then SIGKILL), on error and on Ctrl-C alike.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Every child this run started; all are stopped at the end, on error and on Ctrl-C. */
const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  // A command that could not start (ENOENT) never exits.
  child.once('error', () => {
    if (child.pid === undefined) children.delete(child);
  });
  return child;
}

/** SIGTERM, then SIGKILL for whatever has not exited after 3 s. */
export async function stopAll(): Promise<void> {
  const running = [...children];
  await Promise.all(
    running.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return resolve();
          const force = setTimeout(() => child.kill('SIGKILL'), 3_000);
          child.once('exit', () => {
            clearTimeout(force);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

/** Starts a child process and resolves with the first stdout/stderr match of `pattern`. */
export function startProcess(
  command: string,
  args: string[],
  pattern: RegExp,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = track(spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] }));
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      const match = pattern.exec(seen);
      if (match) resolve({ child, match });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${[command, ...args].join(' ')} exited with ${code}:\n${seen}`)));
  });
}

/** Runs a command to its end and resolves with its stdout; rejects with its output on failure or after `timeoutMs`. */
export function runToEnd(command: string, args: string[], cwd: string, timeoutMs: number): Promise<string> {
  const child = track(spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
  return new Promise((resolve, reject) => {
    let output = '';
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      stdout += chunk.toString();
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')} ended with ${signal ?? code}:\n${output.trim()}`));
    });
  });
}

/**
 * Starts `mcplex serve --config <config>` and resolves once it listens, with its /mcp URL and its base URL.
 * MCPLEX_NODE_ARGS passes Node flags (e.g. --cpu-prof) to the mcplex processes only.
 */
export async function startMcplexServe(config: string): Promise<{ child: ChildProcess; mcpUrl: string; url: string }> {
  const { child, match } = await startProcess(
    process.execPath,
    [
      ...(process.env.MCPLEX_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      join(ROOT, 'bin', 'mcplex.js'),
      'serve',
      '--config',
      config,
    ],
    /listening on ((http:\/\/\S+)\/mcp)/,
  );
  return { child, mcpUrl: match[1]!, url: match[2]! };
}
